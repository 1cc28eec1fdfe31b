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
//     (net/http's HTTP/2 server) or http/1.1 (which then goes through the
//     guard like plain HTTP); acme-tls/1 handshakes answer TLS-ALPN-01
//     challenges and end there. TLS 1.2 and 1.3, AEAD suites only.
//  1. accept, then the guard (guard.go): gatehouse's own HTTP/1.x framing
//     parser checks every request head and chunked body before the HTTP/1
//     server (internal/h1srv) sees it. Content-Length with Transfer-Encoding, obs-folded or invalid
//     header fields, bare CR, absolute-form or odd targets, dot segments,
//     HTTP/1.1 without Host and the like are refused with 4xx and the
//     connection closed; they never reach an app.
//  2. server limits (internal/h1srv; net/http's for HTTP/2):
//     read_header_timeout, idle_timeout, max_header_bytes (431),
//     max_uri_bytes (414). An idle HTTP/1 connection holds no buffer.
//  3. request id: X-Request-ID from a trusted proxy, otherwise generated;
//     returned on the response and passed to the app.
//  4. client IP: X-Forwarded-For is walked right to left from the direct
//     peer and believed only while hops are in server.trusted_proxies.
//     From an untrusted peer every forwarding header is removed.
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
