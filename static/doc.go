// Package static serves static and media files straight from disk, the job
// nginx does in front of Django: fingerprinted files cached forever,
// everything else revalidated, brotli/zstd/gzip variants (precompressed
// siblings or made once and cached), byte ranges for media, and safety
// against every way a path can try to leave its root.
//
// Typical usage, in the front:
//
//	srv, err := static.New(cfg.Static, static.Options{Logger: log, Registerer: reg})
//	if err != nil { ... }
//	defer srv.Close()
//	...
//	if h, ok := srv.Match(r.URL.Path); ok {
//		h.ServeHTTP(w, r) // never touches a worker
//		return
//	}
//	// after the app answered with X-Accel-Redirect: /protected/a.pdf
//	if !srv.ServeInternal(w, r, target) { /* not under an internal mount: 502 */ }
//
// and at build time (`gatehouse compress DIR`):
//
//	stats, err := static.CompressTree(ctx, "staticfiles", static.TreeOptions{})
//
// # How a request is answered
//
// The escaped path is decoded segment by segment (cleanPath): "." and ".."
// parts, dotfiles, encoded slashes and backslashes, NUL and control bytes
// and invalid UTF-8 (overlong encodings) are 404 before anything is opened.
// Files are opened through an os.Root per mount, so a symlink that leads
// out of the root is refused by the kernel-side walk, not by string checks.
//
// An open-file cache (bounded in bytes and entries, LRU) keeps each file's
// metadata, its prepared headers and, for files up to Options.Cache.MaxFile,
// its bytes; a cached file (and each precompressed sibling it serves) is
// stat'ed again after Options.Cache.Recheck to notice changes.
//
// Larger files, and larger siblings, are sent with sendfile from open
// descriptors kept between responses (files.go): a hot file costs an lseek
// per response, not openat, fstat, close and the runtime's fcntl and
// epoll_ctl around them. A descriptor serves one response at a time (the
// kernel's sendfile reads from its offset). Idle descriptors are bounded by
// Options.Cache.Files, least recently used closed first; an entry evicted
// or found changed closes its idle ones at once and those in use when their
// responses end, so a file renamed over mid-response finishes with the old
// bytes. A fresh descriptor is checked against the cached size, mtime and
// inode; a send cut short (a file truncated in place) drops the entry.
//
// Compressible types are offered as br, zstd and gzip: a precompressed
// sibling (app.css.br) at least as new as the file wins; otherwise the
// variant is made once at the best level and kept if it saves 5%. Every
// representation has its own strong ETag, and every response carries Vary:
// Accept-Encoding. Range requests are served on the identity bytes only
// (through http.ServeContent: multipart ranges, If-Range, 416).
//
// Media mounts (kind: media) serve HTML, SVG and XML with
// Content-Security-Policy: sandbox or as attachments, so an uploaded file
// cannot run script in the site's origin; every response has
// X-Content-Type-Options: nosniff.
package static
