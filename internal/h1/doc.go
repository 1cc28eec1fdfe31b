// Package h1 is a small HTTP/1.1 client transport for talking to the app's
// own backends over keep-alive connections. It replaces net/http.Transport
// inside a backend pool, where that transport's generality costs throughput.
//
// Typical usage, one Transport per backend address:
//
//	d := &net.Dialer{Timeout: 5 * time.Second}
//	t := &h1.Transport{
//		Dial: func(ctx context.Context) (net.Conn, error) {
//			return d.DialContext(ctx, "unix", "/run/app.sock")
//		},
//		MaxIdle: 64,
//	}
//	rp := &httputil.ReverseProxy{Rewrite: rewrite, Transport: t}
//	...
//	t.CloseIdleConnections() // when the backend goes away
//
// # Why not net/http.Transport
//
// net/http.Transport runs two goroutines per connection (readLoop and
// writeLoop) and hands every request and response between them over
// channels; a proxy pays for three goroutine switches per exchange. This
// Transport does the whole exchange on the caller's goroutine: take an idle
// connection (last in, first out, so a few hot connections serve a light
// load and the rest time out) or dial one, write the request head through a
// pooled bufio.Writer, copy the body, read the response head with a pooled
// bufio.Reader and return. The common head (HTTP/1.1, framed by
// Content-Length or chunked, wholly in the buffer) is parsed in place into
// one string; anything else goes to net/http's parser, http.ReadResponse,
// and FuzzParseHead checks that the two agree. A caller done with such a
// response (a proxy that has written it on) can hand its Response and
// header map back for the next one (HeadOf, Head.Recycle). A caller that
// says its request's fields are valid already (CheckedKey) spares the
// check of every field. The response Body gives the
// connection back when it has been read to the end. On a socket the
// request's last write and the wait for the response are one step
// (internal/sockwait), so an exchange costs one write and one read, not
// Go's usual extra read that finds nothing yet; the reads and writes are
// raw system calls.
// Idle connections hold no buffers and no goroutine; one timer per
// Transport closes those idle longer than IdleTimeout.
//
// Informational (1xx) responses before the final one are skipped, after
// telling httptrace's Got1xxResponse if the request has a ClientTrace, or
// else the Informational a caller put in the request's context under
// InformationalKey (the proxy passes 103 Early Hints on this way; a
// context value looked up only when a 1xx arrives costs nothing per
// request, where a ClientTrace costs several allocations).
//
// # What it does not do
//
// No TLS, no proxies, no HTTP/2, no compression (a proxy passes the app's
// bytes through), no connection limit per host (the pool bounds
// concurrency), no request trailers beyond those in Request.Trailer at the
// start of the request, and no waiting for "100 Continue": the body is sent
// at once, which RFC 9110 section 10.1.1 allows.
//
// While the request body is being written, the response is not read: a
// backend that answers early (413) without reading the body and without
// closing the connection stalls the exchange until the request's context
// ends. net/http.Transport reads concurrently and would return the early
// answer; the pool's timeout bounds ours.
//
// # Cancellation and retries
//
// The request's context aborts a blocked dial, write or read, and so does
// RoundTripTimeout's bound: the transport's watchdog (internal/watchdog)
// sets a deadline in the past on the connection within about 10ms of the
// context ending or the bound passing. The error wraps the context's error
// and its cause, or watchdog.ErrDeadline, and the connection is closed.
//
// A kept-alive connection can be closed by the backend at any moment. Before
// reuse, an idle connection is checked with a non-blocking peek (one
// recvfrom on Linux) and dropped if the backend closed it; for a GET, HEAD
// or OPTIONS whose body can be had again the check is skipped when the
// connection was idle under half a second (a keep-alive timeout has not
// passed; the retry below covers the rare exception), which saves a system
// call per request under load. If a reused
// connection still fails before any response byte arrives, the request is
// sent once more on a new connection when that is safe: nothing of it was
// written (and its body was not touched), or the method is idempotent (RFC
// 9110 section 9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or an
// Idempotency-Key header) and the body is empty or can be replayed with
// GetBody. Errors are *Error, whose Sent field tells a pool whether trying
// another backend could run the request twice; see Sent. When that retry
// cannot even connect (the backend died of the request), the error is the
// first attempt's, with Sent true: not a dial error, which a pool would
// take for "refused, try another".
package h1
