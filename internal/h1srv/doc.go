// Package h1srv is an HTTP/1.1 server for an ordinary http.Handler, built
// for throughput and for a small cost per idle connection. Typical usage:
//
//	srv := &h1srv.Server{
//		Handler:           h,
//		ReadHeaderTimeout: 10 * time.Second,
//		IdleTimeout:       75 * time.Second,
//	}
//	go srv.Serve(ln)        // ErrServerClosed after Shutdown or Close
//	...
//	err := srv.Shutdown(ctx) // idle connections close at once, requests finish
//
// It does what net/http's server does for HTTP/1.x, in the manner of
// nginx and fasthttp:
//
//   - One goroutine per connection. A connection that was just busy reads
//     its next request as usual for 20ms; after that a fresh goroutine
//     takes it over (the handler's stack growth is not kept while idle)
//     and waits without a buffer: on a plain socket (or a wrapper that
//     implements ReadWaiter) it waits for readability and
//     takes a read buffer from a pool only when bytes are there. Response
//     bytes collect in a pooled buffer that is written once per response,
//     or once per batch of pipelined requests. 10,000 idle keep-alive
//     connections cost about 7 KiB each in gatehouse, goroutine included.
//   - On a plain socket (internal/sockwait) a keep-alive response is
//     written and the wait for the next request starts in one step, so a
//     request costs one read and one write, as in nginx, instead of Go's
//     usual extra read that finds nothing; reads and writes are raw system
//     calls, so the scheduler does not hand the goroutine's P to another
//     thread around each one. A request pipelined while the previous
//     handler ran is served after the 20ms handover at the latest.
//   - The request head is parsed in place and turned into one string;
//     header names and values are substrings of it. The http.Request
//     template, its Header map, URL, context and the ResponseWriter
//     belong to the connection and are reset per request, so a keep-alive
//     GET costs one allocation here (the head string).
//   - Request bodies (Content-Length and chunked, with trailers) are read
//     from the buffer and then straight from the socket; what a handler
//     leaves unread is discarded up to MaxDrainBytes before the connection
//     is reused, or the connection closes.
//   - Responses: Content-Length when the handler set one or finished within
//     4 KiB, chunked otherwise (close-delimited for HTTP/1.0), nothing for
//     HEAD, 1xx, 204 and 304; Date and Content-Type sniffing as net/http;
//     trailers (the Trailer field and http.TrailerPrefix); Expect:
//     100-continue on the first body read; http.Flusher, http.Hijacker,
//     io.ReaderFrom (sendfile) and http.ResponseController's methods.
//   - A client leaving cancels the request's context. net/http watches
//     every request with a background read; here the watch starts only for
//     handlers still running after CloseCheckDelay (10ms), which spares a
//     goroutine and three system calls per short request.
//
// Where it differs from net/http, on purpose:
//
//   - Header changes made after WriteHeader but before the first Write
//     still go out (the head is written lazily, as with a Content-Length
//     computed at the end); net/http takes a snapshot at WriteHeader.
//   - Reads of the request body and writes of the response may always
//     interleave (EnableFullDuplex is a no-op); net/http reads away the
//     unread body before it writes a response unless told otherwise.
//   - Header fields are written in map order, not sorted.
//   - A request's context ends when its connection does (the client
//     leaving, a broken connection, the server closing it), not when the
//     handler returns: the requests of a connection share one context, as
//     they share the Request value. Work a handler leaves behind must not
//     count on that context to stop it.
//   - The Request, its Header, URL and the ResponseWriter must not be used
//     after the handler returns (net/http tolerates more of that).
//   - Heads the parser refuses get a plain 4xx/5xx and the connection
//     closes; the handler never sees them: obs-folded or malformed fields,
//     a bare CR, Transfer-Encoding with Content-Length or in HTTP/1.0,
//     conflicting lengths, a missing or repeated Host, a transfer coding
//     other than chunked (501), an Expect other than 100-continue (417),
//     a head over MaxHeaderBytes (431).
//   - HTTP/2 is not spoken here; internal/h2srv serves it.
package h1srv
