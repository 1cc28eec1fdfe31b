// Package compress holds what static files and app responses share about
// HTTP content codings: Accept-Encoding negotiation with q-values, pooled
// brotli, zstd and gzip writers, the list of compressible media types, and
// a middleware that compresses app responses on the fly.
//
// Typical usage, in the front:
//
//	cfg := compress.Config{MinSize: 1024} // server.compression
//	cfg.Defaults()
//	if err := cfg.Validate(); err != nil { ... }
//	h = compress.Middleware(cfg)(h)
//
// and, where a handler picks among stored variants:
//
//	enc := compress.Negotiate(r.Header["Accept-Encoding"], available)
//	body := compress.Encode(enc, compress.Max.Level(enc), plain)
//
// Encoders come from sync.Pools keyed by coding and level: a brotli or zstd
// writer carries large tables, and allocating one per response would cost
// more than compressing a small body.
package compress
