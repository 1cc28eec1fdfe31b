package h1

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"reflect"
	"testing"
	"time"
)

// FuzzResponse feeds arbitrary backend bytes through RoundTrip and the
// response Body and checks the status and body against net/http's reading
// of the same bytes; then it makes a second exchange on the same Transport,
// which must neither panic nor hang whether the connection was kept or not. The backend is untrusted
// input as far as the front is concerned.
func FuzzResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\n\r\n2\r\nok\r\n0\r\nX: 1\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello",
		"HTTP/1.0 200 OK\r\n\r\nuntil eof",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n",
		"HTTP/1.1 999\r\n\r\n",
		"garbage",
		"",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		tr := &Transport{Dial: func(ctx context.Context) (net.Conn, error) {
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				server.SetDeadline(time.Now().Add(5 * time.Second))
				go io.Copy(io.Discard, server)
				server.Write(data)
			}()
			return client, nil
		}}
		defer tr.CloseIdleConnections()
		for i := range 2 {
			req, _ := http.NewRequest(method, "http://backend/", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			req = req.WithContext(ctx)
			got, gotBody, gotErr := exchangeOnce(tr, req)
			cancel()
			if i == 1 {
				// The fake backend has hung up: a kept connection
				// fails, a new one reads data again. Neither may
				// panic or hang.
				break
			}
			want, wantBody, wantErr := referenceRead(data, req)
			if gotErr != nil {
				if wantErr == nil && want.StatusCode != 101 {
					// Only the head and a stream cut short may fail here
					// and not in the reference: the pipe closes while the
					// reference reads a complete buffer.
					if want.Close || want.ContentLength < 0 {
						continue
					}
					t.Fatalf("RoundTrip failed: %v; net/http read %d %q", gotErr, want.StatusCode, wantBody)
				}
				continue
			}
			if wantErr != nil {
				t.Fatalf("RoundTrip gave %d %q; net/http failed: %v", got.StatusCode, gotBody, wantErr)
			}
			if got.StatusCode != want.StatusCode {
				t.Fatalf("status %d, net/http %d", got.StatusCode, want.StatusCode)
			}
			if got.StatusCode != 101 && !bytes.Equal(gotBody, wantBody) {
				t.Fatalf("body %q, net/http %q", gotBody, wantBody)
			}
		}
	})
}

// exchangeOnce returns the response and its body, or the first error.
func exchangeOnce(tr *Transport, req *http.Request) (*http.Response, []byte, error) {
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == 101 {
		if _, ok := resp.Body.(io.ReadWriteCloser); !ok {
			panic("101 body is not an io.ReadWriteCloser")
		}
		return resp, nil, nil
	}
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// referenceRead is what net/http makes of data: the first final response
// and its body.
func referenceRead(data []byte, req *http.Request) (*http.Response, []byte, error) {
	br := bufio.NewReader(bytes.NewReader(data))
	for n := 0; n <= max1xx; n++ {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != 101 {
			continue
		}
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}
	return nil, nil, io.ErrUnexpectedEOF
}

// FuzzParseHead checks the lean head parser against http.ReadResponse:
// when parseHead accepts a head, net/http must read the same response from
// it and stop at the same byte; when it declines, it must consume nothing.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nX-A: 1\r\nx-a:  2 \r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200\r\nContent-Length: 007\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\tb\r\nContent-Length: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\n X: folded\r\nContent-Length: 1\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 1\n\n",
		"HTTP/1.1 500 Internal Server Error\r\nCONTENT-length: 3\r\n\r\n",
		"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\nx-request-id: a\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: a\r\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: a\nb\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A:\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		req, _ := http.NewRequest("GET", "http://backend/", nil)
		if head {
			req.Method = "HEAD"
		}
		br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		br.Peek(1)
		before := br.Buffered()
		hd, ok := parseHeadBlock(br, req)
		if !ok {
			if br.Buffered() != before {
				t.Fatalf("declined but consumed %d bytes", before-br.Buffered())
			}
			return
		}
		got, length := &hd.resp, hd.resp.ContentLength
		// Recycled at the end, so that the next input is parsed into a
		// map that held this one's fields: one left behind would differ
		// from net/http's header.
		defer func() {
			hd.body.closed = true
			Head{hd}.Recycle()
		}()
		gotHead := before - br.Buffered()
		src := bytes.NewReader(data)
		rbr := bufio.NewReaderSize(src, 4096)
		want, err := http.ReadResponse(rbr, req)
		if err != nil {
			t.Fatalf("parseHead accepted what net/http refuses (%v): %+v", err, got)
		}
		wantHead := len(data) - rbr.Buffered() - src.Len()
		if gotHead != wantHead {
			t.Errorf("head length %d, net/http %d", gotHead, wantHead)
		}
		if got.Status != want.Status || got.StatusCode != want.StatusCode ||
			got.Proto != want.Proto || got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor ||
			got.ContentLength != want.ContentLength || length != want.ContentLength || got.Close != want.Close {
			t.Errorf("got %q %d %s %d close=%v, net/http %q %d %s %d close=%v",
				got.Status, got.StatusCode, got.Proto, got.ContentLength, got.Close,
				want.Status, want.StatusCode, want.Proto, want.ContentLength, want.Close)
		}
		if !reflect.DeepEqual(got.Header, want.Header) {
			t.Errorf("header %q, net/http %q", got.Header, want.Header)
		}
		if !reflect.DeepEqual(got.TransferEncoding, want.TransferEncoding) || len(want.Trailer) > 0 {
			t.Errorf("transfer encoding %q, net/http %q (trailer %q)", got.TransferEncoding, want.TransferEncoding, want.Trailer)
		}
	})
}
