// Package proxy is gatehouse's HTTP front: listeners, request hygiene,
// client identity, routing to static mounts or the app pool, response
// headers, the access log, metrics and the admin endpoint.
//
// Typical usage (cmd/gatehouse does this):
//
//	srv, err := proxy.New(proxy.Options{
//		Config: cfg.Server, Admin: &cfg.Admin,
//		Pool: pool, Static: files, Limit: limiter.Wrap,
//		Logger: log, AccessLog: access,
//	}, registry)
//	if err := srv.Listen(); err != nil { ... }  // bind errors before serving
//	go srv.Serve(ctx)                            // drains on ctx cancel
//	srv.Apply(newOptions)                        // SIGHUP, no request dropped
//
// # Request flow
//
// The order matters; each step relies on the ones before it.
//
//  0. TLS (tls.go): handshakes run off the accept loop; ALPN picks h2
//     (internal/h2srv) or http/1.1 (internal/h1srv, as in the clear);
//     acme-tls/1 handshakes answer TLS-ALPN-01 challenges and end there.
//     TLS 1.2 and 1.3, AEAD suites only.
//  1. framing: internal/h1srv's parser is strict where net/http is
//     lenient. Content-Length with Transfer-Encoding (or twice), obs-folded
//     or invalid header fields, bare CR, HTTP/1.1 without Host, malformed
//     chunked bodies and heads over max_header_bytes (431) or max_uri_bytes
//     (414) are refused before a request exists; the refusal comes to the
//     front as a stand-in (h1srv.Rejection), which answers it with the
//     request id, logs it (route "guard") and counts it, and the connection
//     closes. None reaches an app.
//  2. server limits (internal/h1srv, internal/h2srv): read_header_timeout,
//     idle_timeout, send_timeout. An idle HTTP/1 connection holds no
//     buffer.
//  3. request id: X-Request-ID from a trusted proxy, otherwise generated;
//     returned on the response and passed to the app.
//  4. client IP: X-Forwarded-For is walked right to left from the direct
//     peer and believed only while hops are in server.trusted_proxies.
//     From an untrusted peer every forwarding header is removed. Then the
//     request itself, whatever the protocol (requestcheck.go): CONNECT and
//     TRACE get 405; absolute-form or odd targets, dot segments (also
//     %2e-encoded), %00, backslashes, fragments, broken %-escapes and bad
//     Host values get 400, so the app, the rate limiter and the static
//     mounts all see the same path.
//  5. ACME HTTP-01 challenges (only tokens of a pending order), then the
//     Host allowlist (server.hosts, plus on-demand TLS names): others get
//     421 Misdirected Request.
//  6. with TLS on: plain HTTP gets 308 to HTTPS (tls.redirect_http), and
//     HTTPS responses get Strict-Transport-Security (tls.hsts).
//  7. route: the longest static mount prefix is served from disk and
//     never touches a worker; everything else goes to the app route.
//  8. app route: rate limit (ratelimit), compression of the response
//     (internal/compress), then the forwarder: the request body is read
//     in full first (memory up to body_buffer_bytes, then an unlinked temp
//     file, at most max_body_bytes: 413), X-Forwarded-For/-Proto/-Host,
//     X-Real-IP, X-Request-ID and X-Request-Start are set, hop-by-hop
//     headers stripped, and the request handed to the Pool. Pool errors
//     map to 503 (queue full or timed out, with Retry-After), 504 (app
//     timeout) and 502 (app down or broken) in one function, statusFor.
//     An X-Accel-Redirect or X-Sendfile from the app is served from an
//     internal static mount. The response is flushed whenever the app has
//     nothing more ready, so a small one goes out in one write and a
//     stream as it comes; 1xx (103 Early Hints) and upgrades pass through.
//  9. response: security headers (X-Content-Type-Options, Referrer-Policy,
//     X-Frame-Options, plus server.headers) unless the response has its
//     own; then the access log line and metrics.
//
// Error answers made by gatehouse carry the status in words and the
// request id; the detail goes to the log under the same id.
//
// # Reload
//
// A configuration generation (a front) is immutable. Apply builds a new one
// and swaps a pointer: requests in flight finish on the old generation,
// new ones start on the new. Listen addresses and socket-level limits need
// a restart.
package proxy
