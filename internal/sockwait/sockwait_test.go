//go:build unix

package sockwait

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t testing.TB) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		done <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-done
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func TestWriteWaitSeesTheAnswer(t *testing.T) {
	a, b := pair(t)
	s := New(a)
	written := 0
	s.Written = func() { written++ }
	go func() {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(b, buf); err == nil {
			time.Sleep(20 * time.Millisecond) // the waiter is parked by now
			b.Write([]byte("pong"))
		}
	}()
	for round := 0; round < 3; round++ {
		n, werr, rerr := s.WriteWait([]byte("ping\n"))
		if n != 5 || werr != nil || rerr != nil {
			t.Fatalf("round %d: WriteWait = %d, %v, %v", round, n, werr, rerr)
		}
		if round == 0 {
			buf := make([]byte, 4)
			a.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "pong" {
				t.Fatalf("read after the wait: %q %v", buf, err)
			}
			go func() { // answer the next two at once
				buf := make([]byte, 5)
				for range 2 {
					if _, err := io.ReadFull(b, buf); err != nil {
						return
					}
					b.Write([]byte("pong"))
				}
			}()
			continue
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(a, buf); err != nil {
			t.Fatal(err)
		}
	}
	if written != 3 {
		t.Errorf("Written called %d times, want 3", written)
	}
}

func TestWriteWaitDeadline(t *testing.T) {
	a, _ := pair(t)
	s := New(a)
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	n, werr, rerr := s.WriteWait([]byte("hello"))
	if n != 5 || werr != nil || !errors.Is(rerr, os.ErrDeadlineExceeded) {
		t.Fatalf("WriteWait = %d, %v, %v; want the deadline", n, werr, rerr)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("returned after %s, before the deadline", d)
	}
}

func TestWriteWaitPeerResets(t *testing.T) {
	// A peer that closed before the write answers it with a reset, which
	// ends the wait: this is why a stale backend connection cannot hang.
	a, b := pair(t)
	b.SetLinger(0)
	b.Close()
	time.Sleep(20 * time.Millisecond)
	s := New(a)
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, werr, rerr := s.WriteWait([]byte("hello"))
	if werr == nil && rerr != nil {
		t.Fatalf("the wait failed (%v) instead of ending", rerr)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("the wait did not end on the reset")
	}
	if werr == nil {
		_, err := a.Read(make([]byte, 1))
		if err == nil {
			t.Fatal("read after a reset succeeded")
		}
	}
}

func TestWriteWaitPeerClosed(t *testing.T) {
	// The usual stale keep-alive connection: the peer closed (a FIN, not
	// a reset) before the write, so the FIN is already queued and does
	// not wake the wait; the peer's answer to the write, a reset, must.
	a, b := pair(t)
	b.Close()
	time.Sleep(20 * time.Millisecond)
	s := New(a)
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, werr, rerr := s.WriteWait([]byte("GET / HTTP/1.1\r\n\r\n"))
	if werr == nil && rerr != nil {
		t.Fatalf("the wait failed (%v) instead of ending", rerr)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the wait took %s: the reset did not end it", d)
	}
}

func TestWriteWaitFullSocket(t *testing.T) {
	a, _ := pair(t) // the peer never reads
	a.SetWriteBuffer(16 << 10)
	s := New(a)
	big := make([]byte, 64<<20)
	n, werr, rerr := s.WriteWait(big)
	if werr != nil || rerr != nil || n <= 0 || n >= len(big) {
		t.Fatalf("WriteWait = %d, %v, %v; want a partial write and no error", n, werr, rerr)
	}
}

func TestWriteWaitClosed(t *testing.T) {
	a, _ := pair(t)
	s := New(a)
	a.Close()
	n, werr, rerr := s.WriteWait([]byte("x"))
	if n != 0 || werr != nil || rerr == nil {
		t.Fatalf("WriteWait on a closed conn = %d, %v, %v", n, werr, rerr)
	}
}

func TestWaitAndAlive(t *testing.T) {
	a, b := pair(t)
	s := New(a)
	if !s.Alive() {
		t.Fatal("an open idle conn is not alive")
	}
	b.Write([]byte("x"))
	// Bytes queued before Wait must end it (the peek).
	time.Sleep(20 * time.Millisecond)
	a.SetReadDeadline(time.Now().Add(time.Second))
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	if s.Alive() {
		t.Fatal("a conn with unasked bytes is alive")
	}
	a2, b2 := pair(t)
	s2 := New(a2)
	b2.Close()
	time.Sleep(20 * time.Millisecond)
	if s2.Alive() {
		t.Fatal("a conn the peer closed is alive")
	}
	var nilSock *Socket
	if !nilSock.Alive() || nilSock.Wait() != nil {
		t.Fatal("a nil Socket must be a no-op")
	}
	if n, werr, rerr := nilSock.WriteWait([]byte("x")); n != 0 || werr != nil || rerr != nil {
		t.Fatal("a nil Socket's WriteWait must write nothing")
	}
}

func TestWriteWaitsForRoom(t *testing.T) {
	a, b := pair(t)
	a.SetWriteBuffer(16 << 10)
	s := New(a)
	head := []byte("head:")
	body := make([]byte, 3<<20) // over rawMax and the socket buffers
	for i := range body {
		body[i] = byte(i % 251)
	}
	got := make(chan []byte, 1)
	go func() {
		data, _ := io.ReadAll(b)
		got <- data
	}()
	n, err := s.Write(head, body)
	if err != nil || n != len(head)+len(body) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	a.CloseWrite()
	data := <-got
	if len(data) != len(head)+len(body) || string(data[:5]) != "head:" {
		t.Fatalf("peer got %d bytes", len(data))
	}
	for i, c := range data[5:] {
		if c != byte(i%251) {
			t.Fatalf("byte %d is %d, want %d", i, c, byte(i%251))
		}
	}
}

func TestWriteDeadline(t *testing.T) {
	a, _ := pair(t) // the peer never reads
	a.SetWriteBuffer(16 << 10)
	s := New(a)
	a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := s.Write(nil, make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 {
		t.Fatalf("Write = %d, %v; want a partial write and the deadline", n, err)
	}
}

func TestRead(t *testing.T) {
	a, b := pair(t)
	s := New(a)
	go func() {
		time.Sleep(20 * time.Millisecond)
		b.Write([]byte("hello"))
		b.Close()
	}()
	buf := make([]byte, 16)
	n, err := s.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if n, err := s.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after close = %d, %v; want io.EOF", n, err)
	}
	a2, _ := pair(t)
	s2 := New(a2)
	a2.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := s2.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v", err)
	}
}
