// Package h2srv is an HTTP/2 server (RFC 9113) for an ordinary
// http.Handler, built for throughput: the counterpart of h1srv for
// connections that negotiated "h2". Typical usage:
//
//	srv := &h2srv.Server{
//		Handler:              h,
//		IdleTimeout:          75 * time.Second,
//		MaxConcurrentStreams: 250,
//	}
//	go srv.Serve(h2ln)       // *tls.Conn with ALPN "h2"; ErrServerClosed after Shutdown or Close
//	...
//	err := srv.Shutdown(ctx) // GOAWAY; open streams finish, then connections close
//
// net/http's HTTP/2 server reached a quarter to under half of nginx's
// requests/s on small responses (bench/tls): every frame goes through a
// channel to one serving goroutine and every response through another
// round trip to a writer. Here, as in nginx:
//
//   - One goroutine reads a connection and processes what one read brought
//     as a batch, frame after frame, without handing frames to another
//     goroutine. Control answers (SETTINGS and PING acknowledgements,
//     WINDOW_UPDATE, RST_STREAM) are appended to the connection's output
//     buffer and leave with the batch.
//   - All output (HEADERS, DATA, control frames) is appended under the
//     connection's mutex to one buffer. A writer goroutine takes the whole
//     buffer and writes it with one call, so the responses of the streams
//     that finish while a write is under way go out together in the next
//     one; with handlers still running it yields once before taking the
//     buffer, so that responses about to finish join the write. Under
//     h2load -m10 that is about six responses per write (one per write
//     without the yield).
//   - Response header blocks are encoded as nginx does (encode.go): static
//     table names, literals without indexing, no dynamic table, the name
//     bytes of each header key cached. The hpack package's encoder, which
//     indexes everything, was a quarter of the CPU time per response.
//     Requests are decoded with golang.org/x/net/http2/hpack.
//   - Each request runs its handler on its own goroutine (handlers may
//     block: gatehouse proxies to applications), taken from a pool of
//     workers (worker.go) whose stacks have already grown. A response that
//     ends within 8 KiB is buffered and goes out as HEADERS (with an exact
//     Content-Length) and one DATA frame, appended in one step.
//   - A connection waits for input without its 20 KiB read buffer, which
//     comes from a pool when bytes arrive; the write buffer of an idle
//     connection is dropped too.
//   - Per-stream state is pooled: the Request the handler gets (its
//     context set by copying WithContext's result over it), its Header map
//     and URL, the body buffer and the ResponseWriter with its buffer. A
//     GET costs three allocations and 112 bytes, one of them the handler's
//     Header().Set (BenchmarkGET; the cancelable context is the others).
//
// What it implements: flow control both ways (connection and stream
// windows; the client's SETTINGS_INITIAL_WINDOW_SIZE changes applied to
// open streams; its MAX_FRAME_SIZE respected); request bodies streamed to
// the handler with WINDOW_UPDATEs as it reads (256 KiB per stream, 1 MiB
// per connection); Content-Length checked against the DATA received;
// trailers both ways (the Trailer field and http.TrailerPrefix);
// http.Flusher, io.ReaderFrom and http.ResponseController (Flush,
// SetReadDeadline, SetWriteDeadline, EnableFullDuplex); 1xx responses
// (103 Early Hints via WriteHeader) and 100-continue on the first body
// read; HEAD, 204 and 304 without a body; Date and Content-Type sniffing
// as net/http; CONNECT tunnels; r.Context() canceled when the client
// resets the stream or the connection ends; padding, PRIORITY (parsed,
// ignored), CONTINUATION, PING, GOAWAY; SETTINGS_MAX_HEADER_LIST_SIZE (a
// larger request gets 431); MaxConcurrentStreams (REFUSED_STREAM beyond
// it); the idle timeout; malformed requests (connection-specific fields,
// TE other than "trailers", uppercase names, bad pseudo-headers) reset
// with PROTOCOL_ERROR. h2spec passes in full (TestH2spec).
//
// Abuse it bounds: rapid reset (CVE-2023-44487: a reset stream keeps its
// handler slot until the handler returns; a client that piles up more than
// four times MaxConcurrentStreams waiting streams gets GOAWAY
// ENHANCE_YOUR_CALM); control-frame floods from a client that does not
// read (PING, SETTINGS, frames we answer with RST_STREAM: cut off past
// 1 MiB of queued output); CONTINUATION floods (a header block over twice
// MaxHeaderBytes ends the connection); a client that stops reading
// (IdleTimeout bounds each write).
//
// Where it differs from net/http, on purpose:
//
//   - After the response is complete, a request body still arriving is
//     read and discarded (up to 64 KiB, then RST_STREAM(NO_ERROR)) rather
//     than cut off at once, so a malformed rest (a Content-Length the DATA
//     does not match) still gets its PROTOCOL_ERROR.
//   - Header changes made after WriteHeader but before the response goes
//     out still go out (a Content-Length too); header fields are written
//     in map order. A response that ends short of its Content-Length is
//     reset (INTERNAL_ERROR) rather than sent as if complete.
//   - The Request, its Header, URL and the ResponseWriter must not be used
//     after the handler returns.
//   - No server push, no extended CONNECT (RFC 8441; WebSockets use
//     HTTP/1.1), no h2c upgrade from HTTP/1.1; priorities are ignored (as
//     RFC 9113 allows).
package h2srv
