package h1

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
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
