package static

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/internal/compress"
	"github.com/gatehouse/gatehouse/internal/conf"
	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// Options are the settings shared by all mounts.
type Options struct {
	// Logger receives errors reading files; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the static metrics; nil means none.
	Registerer prometheus.Registerer
	// Cache bounds the open-file cache; zero fields take its defaults.
	Cache CacheConfig
	// Levels are the compression levels for variants made once and
	// cached; zero fields take compress.Max (brotli 11, gzip 9, zstd 4).
	Levels compress.Levels
}

// CacheConfig is the open-file cache shared by all mounts. It has yaml tags
// so the front can expose it (e.g. as server.static_cache).
type CacheConfig struct {
	// Memory bounds the bytes held for file contents and their encoded
	// variants. Default 32MiB (the Go heap may take up to twice that before
	// the collector returns it).
	Memory conf.Size `yaml:"memory"`
	// Entries bounds the number of files the cache knows. Default 10000.
	Entries int `yaml:"entries"`
	// MaxFile is the largest file kept in memory; bigger files are sent
	// from disk with sendfile. Default 256KiB.
	MaxFile conf.Size `yaml:"max_file"`
	// Recheck is how long a cached file is trusted before it is stat'ed
	// again to notice changes (nginx's open_file_cache_valid). Default 1s.
	Recheck conf.Duration `yaml:"recheck"`
	// Files bounds the idle file descriptors kept open for sending large
	// files and precompressed siblings with sendfile, least recently used
	// closed first (nginx's open_file_cache max). Default 1000; a
	// negative value keeps none (every response opens its file).
	Files int `yaml:"files"`
}

// Defaults fills zero fields with the documented defaults.
func (c *CacheConfig) Defaults() {
	if c.Memory == 0 {
		c.Memory = 32 << 20
	}
	if c.Entries == 0 {
		c.Entries = 10000
	}
	if c.MaxFile == 0 {
		c.MaxFile = 256 << 10
	}
	if c.Recheck == 0 {
		c.Recheck = conf.Duration(time.Second)
	}
	if c.Files == 0 {
		c.Files = 1000
	}
}

// Validate checks the bounds; paths are relative to the section.
func (c *CacheConfig) Validate() error {
	var errs conf.Errors
	if c.Memory < 0 {
		errs.Add("memory", "must not be negative")
	}
	if c.Entries < 1 {
		errs.Add("entries", "must be at least 1")
	}
	if c.MaxFile < 0 || c.MaxFile > c.Memory {
		errs.Add("max_file", "must be between 0 and memory (%s)", c.Memory)
	}
	return errs.Err()
}

func (o *Options) defaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Cache.Defaults()
	// Zero levels take the best one: the work is done once per file.
	if o.Levels.Gzip == 0 {
		o.Levels.Gzip = compress.Max.Gzip
	}
	if o.Levels.Brotli == 0 {
		o.Levels.Brotli = compress.Max.Brotli
	}
	if o.Levels.Zstd == 0 {
		o.Levels.Zstd = compress.Max.Zstd
	}
}

// Server serves every mount. It is safe for concurrent use.
type Server struct {
	opts     Options
	log      *slog.Logger
	public   []*mount // longest URL first
	internal []*mount // longest URL first
	cache    *cache
	files    *filePool // open descriptors of files sent with sendfile
	metrics  *metrics

	// compressing has a slot per CPU: variants being made right now.
	compressing chan struct{}
}

// mount is one configured prefix with its open root.
type mount struct {
	cfg      Config
	srv      *Server
	root     *os.Root
	rootPath string // absolute, cleaned: for X-Sendfile paths
	route    string // reqinfo route name

	cacheControl          []string
	cacheControlImmutable []string

	manifestMu      sync.RWMutex
	manifest        map[string]bool
	manifestMod     time.Time
	manifestChecked atomic.Int64

	counters [len(statusLabels)][4]prometheus.Counter
}

// New opens every mount's root and returns the server. mounts get Defaults
// applied and are validated together.
func New(mounts []Config, opts Options) (*Server, error) {
	opts.defaults()
	s := &Server{opts: opts, log: opts.Logger.With("component", "static"),
		compressing: make(chan struct{}, runtime.GOMAXPROCS(0))}
	for i := range mounts {
		mounts[i].Defaults()
	}
	if err := ValidateMounts(mounts); err != nil {
		return nil, err
	}
	if err := opts.Cache.Validate(); err != nil {
		return nil, err
	}
	s.metrics = newMetrics(opts.Registerer)
	s.files = newFilePool(opts.Cache.Files, s.metrics.opens)
	s.cache = newCache(int64(opts.Cache.Memory), opts.Cache.Entries, s.files)
	s.cache.onEvict = s.metrics.evictions.Inc
	for i, c := range mounts {
		m, err := s.openMount(c)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("static[%d] %s: %w", i, c.URL, err)
		}
		if c.Internal {
			s.internal = append(s.internal, m)
		} else {
			s.public = append(s.public, m)
		}
	}
	byLength := func(l []*mount) {
		sort.SliceStable(l, func(i, j int) bool { return len(l[i].cfg.URL) > len(l[j].cfg.URL) })
	}
	byLength(s.public)
	byLength(s.internal)
	return s, nil
}

func (s *Server) openMount(c Config) (*mount, error) {
	abs, err := filepath.Abs(c.Root)
	if err != nil {
		return nil, fmt.Errorf("resolving root: %w", err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("opening root: %w", err)
	}
	m := &mount{cfg: c, srv: s, root: root, rootPath: abs, route: "static:" + c.URL,
		counters: s.metrics.counters(c.URL)}
	scope := "public"
	if c.Internal {
		scope = "private"
	}
	if age := c.MaxAge.D(); age > 0 {
		m.cacheControl = []string{scope + ", max-age=" + strconv.FormatInt(int64(age.Seconds()), 10)}
	} else {
		m.cacheControl = []string{scope + ", no-cache"}
	}
	m.cacheControlImmutable = []string{scope + ", max-age=31536000, immutable"}
	m.loadManifest(time.Now())
	return m, nil
}

// Close releases the roots and the idle descriptors. Responses already
// sending a file finish it (their descriptor is closed when they are
// done); other requests in flight may fail.
func (s *Server) Close() error {
	if s.files != nil {
		s.files.close()
	}
	var errs []error
	for _, l := range [][]*mount{s.public, s.internal} {
		for _, m := range l {
			errs = append(errs, m.root.Close())
		}
	}
	return errors.Join(errs...)
}

// Match returns the handler of the public mount with the longest URL that
// prefixes path (r.URL.Path as received), or false. A path equal to a
// mount's URL without its trailing slash matches too (it is redirected).
func (s *Server) Match(path string) (http.Handler, bool) {
	for _, m := range s.public {
		u := m.cfg.URL
		if strings.HasPrefix(path, u) || len(path) == len(u)-1 && path == u[:len(u)-1] {
			return m, true
		}
	}
	return nil, false
}

// ServeInternal serves the file an app named in X-Accel-Redirect (a URL
// path such as /protected/report.pdf, escaped, an optional query ignored)
// from an internal mount, answering r with all the usual headers,
// conditionals and ranges. It returns false, writing nothing, when target
// is under no internal mount: the front then answers an error. Any method
// but HEAD is served as GET (nginx does the same). Headers the front copied
// from the app response into w (Content-Disposition, Cache-Control,
// Set-Cookie) are kept; Content-Type, Content-Length, ETag and
// Last-Modified are the file's.
func (s *Server) ServeInternal(w http.ResponseWriter, r *http.Request, target string) bool {
	r = asGet(r)
	clean, dir, ok := cleanPath(target)
	for _, m := range s.internal {
		u := m.cfg.URL
		if !strings.HasPrefix(clean, u) && !(ok && clean == u[:len(u)-1]) {
			continue
		}
		if !ok {
			m.notFound(w, r)
			return true
		}
		if len(clean) < len(u) {
			clean, dir = u, true // "/protected" names the mount's folder
		}
		m.serve(w, r, clean, dir)
		return true
	}
	if !ok {
		// An unsafe target can still be meant for an internal mount; match
		// it loosely so it gets a 404 rather than the front's error.
		for _, m := range s.internal {
			if strings.HasPrefix(target, m.cfg.URL) {
				m.notFound(w, r)
				return true
			}
		}
	}
	return false
}

// ServeSendfile serves the file an app named in X-Sendfile (a filesystem
// path) when it lies under the root of an internal mount, else returns
// false without writing.
func (s *Server) ServeSendfile(w http.ResponseWriter, r *http.Request, file string) bool {
	r = asGet(r)
	if !filepath.IsAbs(file) {
		return false
	}
	file = filepath.Clean(file)
	for _, m := range s.internal {
		rel, err := filepath.Rel(m.rootPath, file)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
			continue
		}
		// Re-enter through the URL space so every check applies.
		p := m.cfg.URL + filepath.ToSlash(rel)
		if rel == "." {
			p = m.cfg.URL
		}
		clean, dir, ok := cleanPath(escapeSegments(p))
		if !ok {
			m.notFound(w, r)
			return true
		}
		m.serve(w, r, clean, dir)
		return true
	}
	return false
}

// asGet turns the app request (a POST to a download view, say) into the GET
// of the file it named, as nginx does for X-Accel-Redirect; HEAD stays HEAD.
// Conditional and Range headers are kept: they are the client's.
func asGet(r *http.Request) *http.Request {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return r
	}
	g := r.WithContext(r.Context())
	g.Method = http.MethodGet
	return g
}

// escapeSegments escapes the bytes cleanPath would refuse raw, so a file
// name with '%' or '?' maps back to itself.
func escapeSegments(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' || c == '?' || c == '\\' || c < 0x20 || c >= 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// ServeHTTP serves a request routed to the mount.
func (m *mount) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if info := reqinfo.From(r.Context()); info != nil {
		info.Route = m.route
	}
	clean, dir, ok := cleanPath(r.URL.EscapedPath())
	if !ok {
		m.notFound(w, r)
		return
	}
	u := m.cfg.URL
	if clean == u[:len(u)-1] {
		http.Redirect(w, r, u, http.StatusMovedPermanently)
		return
	}
	if !strings.HasPrefix(clean, u) {
		m.notFound(w, r)
		return
	}
	m.serve(w, r, clean, dir)
}

func (m *mount) notFound(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["X-Content-Type-Options"] = nosniff
	http.Error(w, "404 page not found", http.StatusNotFound)
	m.srv.metrics.count(m, http.StatusNotFound, compress.Identity)
}

var (
	nosniff     = []string{"nosniff"}
	varyAE      = []string{"Accept-Encoding"}
	acceptBytes = []string{"bytes"}
	allowGET    = []string{"GET, HEAD"}
	cspSandbox  = []string{"sandbox"}
	attachment  = []string{"attachment"}
)

// serve answers for the canonical path clean (under m's URL).
func (m *mount) serve(w http.ResponseWriter, r *http.Request, clean string, dir bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h := w.Header()
		h["Allow"] = allowGET
		h["X-Content-Type-Options"] = nosniff
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		m.srv.metrics.count(m, http.StatusMethodNotAllowed, compress.Identity)
		return
	}
	rel := clean[len(m.cfg.URL):]
	if dir || rel == "" {
		if m.cfg.Index == "" {
			m.notFound(w, r)
			return
		}
		rel += m.cfg.Index
	}
	e, err := m.lookup(rel, requestTime(r))
	if err != nil {
		if errors.Is(err, errIsDir) && m.cfg.Index != "" {
			// A folder named without its slash: send the client to the
			// slash form so relative links in the index resolve.
			target := r.URL.EscapedPath() + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		level := slog.LevelWarn
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errIsDir) || errors.Is(err, errNotRegular) ||
			strings.Contains(err.Error(), "path escapes") {
			// Expected answers to bad paths (or probes): not worth a warning.
			level = slog.LevelDebug
		}
		if m.srv.log.Enabled(r.Context(), level) {
			m.srv.log.LogAttrs(r.Context(), level, "file not served",
				slog.String("mount", m.cfg.URL), slog.String("path", rel), slog.Any("error", err))
		}
		m.notFound(w, r)
		return
	}
	m.respond(w, r, e)
}

var (
	errIsDir      = errors.New("static: is a directory")
	errNotRegular = errors.New("static: not a regular file")
)

// requestTime is when the front took r in, which is recent enough to
// decide whether a cached file is due for a check, and spares a clock read.
func requestTime(r *http.Request) time.Time {
	if info := reqinfo.From(r.Context()); info != nil && !info.Start.IsZero() {
		return info.Start
	}
	return time.Now()
}

// lookup returns the cache entry for rel, loading it or reloading it when
// the file changed (checked at most every Recheck, as of now).
func (m *mount) lookup(rel string, now time.Time) (*entry, error) {
	c := m.srv.cache
	m.checkManifest(now)
	if e := c.get(cacheKey{m, rel}); e != nil {
		last := e.checked.Load()
		if now.UnixNano()-last < int64(m.srv.opts.Cache.Recheck) || !e.checked.CompareAndSwap(last, now.UnixNano()) {
			m.srv.metrics.hits.Inc()
			return e, nil
		}
		fi, err := m.root.Stat(rel)
		if err == nil && fi.Mode().IsRegular() && fi.Size() == e.size && fi.ModTime().Equal(e.mod) && inode(fi) == e.ino &&
			m.siblingsSame(e) {
			m.srv.metrics.hits.Inc()
			return e, nil
		}
		c.remove(e)
	}
	m.srv.metrics.misses.Inc()
	e, err := m.load(rel, now)
	if err != nil {
		return nil, err
	}
	c.put(e)
	return e, nil
}

// siblingsSame reports whether every precompressed sibling e serves is
// still the file it was (a deploy that rewrites only the .br must not
// leave the old one in use, from memory or from an open descriptor).
func (m *mount) siblingsSame(e *entry) bool {
	for i := range e.variants {
		s := &e.variants[i]
		if !s.done.Load() || s.v == nil || s.v.sib.name == "" {
			continue
		}
		fi, err := m.root.Stat(s.v.sib.name)
		if err != nil || !s.v.sib.same(fi) {
			return false
		}
	}
	return true
}

func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// load reads a file's metadata (and its bytes when small) through the
// mount's os.Root, which refuses any path, symlink or not, that leads
// outside the root.
func (m *mount) load(rel string, now time.Time) (*entry, error) {
	f, err := m.root.Open(rel)
	if err != nil {
		return nil, err
	}
	keep := false // f goes to the entry's open file
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, errIsDir
	}
	if !fi.Mode().IsRegular() {
		return nil, errNotRegular
	}
	e := &entry{key: cacheKey{m, rel}, size: fi.Size(), mod: fi.ModTime(), ino: inode(fi)}
	e.checked.Store(now.UnixNano())
	e.ctype = typeByName(rel)
	e.compressible = compress.Compressible(e.ctype)
	if e.size <= int64(m.srv.opts.Cache.MaxFile) {
		e.data = make([]byte, e.size)
		if _, err := io.ReadFull(f, e.data); err != nil {
			return nil, fmt.Errorf("reading %s: %w", rel, err)
		}
	} else {
		// Sent with sendfile; the descriptor just opened is the first
		// one kept for it.
		keep = true
		e.file = m.srv.files.file(idOf(rel, fi), f)
	}
	e.hdr = m.headers(e, compress.Identity, e.size)
	return e, nil
}

// etagBase is the opaque part of a file's strong ETag: mtime and size, as
// nginx builds it, so a changed file always gets a new tag.
func etagBase(e *entry) string {
	return strconv.FormatInt(e.mod.UnixNano(), 36) + "-" + strconv.FormatInt(e.size, 36)
}

// headers builds the header values of one representation of e.
func (m *mount) headers(e *entry, enc compress.Encoding, size int64) headerSet {
	tag := etagBase(e)
	if enc != compress.Identity {
		// A distinct strong tag per coding: the bytes differ (RFC 9110 8.8.3.3).
		tag += "-" + enc.String()
	}
	tag = `"` + tag + `"`
	h := headerSet{
		contentType:   []string{e.ctype},
		contentLength: []string{strconv.FormatInt(size, 10)},
		etag:          []string{tag},
		etagValue:     tag,
		lastModified:  []string{e.mod.UTC().Format(http.TimeFormat)},
		cacheControl:  m.cacheControl,
	}
	if m.immutable(e.key.rel) {
		h.cacheControl = m.cacheControlImmutable
	}
	if enc != compress.Identity {
		h.encoding = []string{enc.String()}
	}
	if scriptCapable(e.ctype) {
		switch m.cfg.ScriptTypes {
		case ScriptSandbox:
			h.csp = cspSandbox
		case ScriptAttachment:
			h.disposition = attachment
		}
	}
	return h
}

func (m *mount) immutable(rel string) bool {
	switch m.cfg.Immutable {
	case ImmutableAlways:
		return true
	case ImmutableNever:
		return false
	}
	if fingerprinted(rel) {
		return true
	}
	m.manifestMu.RLock()
	defer m.manifestMu.RUnlock()
	return m.manifest[rel]
}

// variant returns e's representation in enc, or nil when there is none:
// a precompressed sibling newer than the file, or an encoding made once
// from the bytes in memory when it saves at least 5%.
func (m *mount) variant(e *entry, enc compress.Encoding) *variant {
	slot := &e.variants[enc]
	if slot.done.Load() {
		return slot.v
	}
	slot.mu.Lock()
	defer slot.mu.Unlock()
	if slot.done.Load() {
		return slot.v
	}
	if *m.cfg.Precompressed {
		if v := m.sibling(e, enc); v != nil {
			slot.v = v
			slot.done.Store(true)
			m.srv.cache.grow(e, int64(len(v.data)), v.file)
			return v
		}
	}
	if !*m.cfg.Compress || e.data == nil {
		slot.done.Store(true)
		return nil
	}
	// At most one compression per CPU at a time; when all are busy this
	// request goes out in another coding or plain, and a later one does the
	// work. Without this, a client cycling through more files than the
	// cache holds could keep every CPU busy at brotli level 11.
	select {
	case m.srv.compressing <- struct{}{}:
	default:
		return nil
	}
	start := time.Now()
	out := compress.Encode(enc, m.srv.opts.Levels.Level(enc), e.data)
	<-m.srv.compressing
	m.srv.metrics.compressSeconds.Add(time.Since(start).Seconds())
	if compress.Worth(len(e.data), len(out)) {
		out = bytes.Clone(out) // drop the buffer's slack before caching
		slot.v = &variant{hdr: m.headers(e, enc, int64(len(out))), data: out, size: int64(len(out))}
		m.srv.cache.grow(e, int64(len(out)), nil)
	}
	slot.done.Store(true)
	return slot.v
}

// sibling loads a precompressed file (name.css.br) when it is a regular
// file at least as new as the original.
func (m *mount) sibling(e *entry, enc compress.Encoding) *variant {
	name := e.key.rel + enc.Ext()
	f, err := m.root.Open(name)
	if err != nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.ModTime().Before(e.mod) {
		f.Close()
		return nil
	}
	v := &variant{hdr: m.headers(e, enc, fi.Size()), size: fi.Size(), sib: idOf(name, fi)}
	if fi.Size() > int64(m.srv.opts.Cache.MaxFile) {
		v.file = m.srv.files.file(v.sib, f)
		return v
	}
	defer f.Close()
	v.data = make([]byte, fi.Size())
	if _, err := io.ReadFull(f, v.data); err != nil {
		return nil
	}
	return v
}

// respond writes the response for e: content negotiation, conditionals,
// ranges, then the body from memory or from disk.
func (m *mount) respond(w http.ResponseWriter, r *http.Request, e *entry) {
	rangeReq := r.Header.Get("Range") != "" && r.Method == http.MethodGet
	enc, v := compress.Identity, (*variant)(nil)
	// Ranges are served from the identity bytes only: their offsets then
	// mean the same thing whatever the client accepts, and a download
	// resumed with another Accept-Encoding still fits together.
	if e.compressible && !rangeReq {
		a := compress.ParseAcceptLines(r.Header["Accept-Encoding"])
		offered := compress.All
		for {
			enc = a.Negotiate(offered)
			if enc == compress.Identity {
				break
			}
			if v = m.variant(e, enc); v != nil {
				break
			}
			offered &^= 1 << enc
		}
	}
	hs := &e.hdr
	if v != nil {
		hs = &v.hdr
	}
	h := w.Header()
	// Vary on every answer, 304 and 206 included: a cache must not hand
	// this response to a client with different Accept-Encoding (caddy#5849).
	h["Vary"] = varyAE
	h["X-Content-Type-Options"] = nosniff
	h["Etag"] = hs.etag
	h["Last-Modified"] = hs.lastModified
	if !m.cfg.Internal || h["Cache-Control"] == nil {
		// For X-Accel-Redirect the app's own Cache-Control, which the front
		// copied, wins (as with nginx): it knows who may cache the file.
		h["Cache-Control"] = hs.cacheControl
	}
	if hs.csp != nil {
		h["Content-Security-Policy"] = hs.csp
	}
	if hs.disposition != nil && h.Get("Content-Disposition") == "" {
		h["Content-Disposition"] = hs.disposition
	}

	if code := m.preconditions(r, e, hs.etagValue); code != 0 {
		if code == http.StatusNotModified {
			w.WriteHeader(code)
		} else {
			http.Error(w, strconv.Itoa(code)+" "+http.StatusText(code), code)
		}
		m.srv.metrics.count(m, code, enc)
		return
	}

	h["Content-Type"] = hs.contentType
	if rangeReq {
		m.serveRange(w, r, e)
		return
	}
	h["Accept-Ranges"] = acceptBytes
	// An exact length on every 200, encoded ones and HEAD included: clients
	// use it for progress and size checks (caddy#7040, #7250).
	h["Content-Length"] = hs.contentLength
	if hs.encoding != nil {
		h["Content-Encoding"] = hs.encoding
	}
	w.WriteHeader(http.StatusOK)
	m.srv.metrics.count(m, http.StatusOK, enc)
	if r.Method == http.MethodHead {
		return
	}
	switch {
	case v != nil && v.file != nil:
		m.sendFile(w, e, v.file)
	case v != nil:
		w.Write(v.data)
	case e.file != nil:
		m.sendFile(w, e, e.file)
	default:
		w.Write(e.data)
	}
}

// sendFile copies of to the client; io.Copy from an *os.File reaches the
// HTTP server's ReadFrom, which uses sendfile(2). The head is out already,
// so a file that is not the cached one any more aborts the response rather
// than send a body that disagrees with its Content-Length and ETag.
func (m *mount) sendFile(w http.ResponseWriter, e *entry, of *openFile) {
	files := m.srv.files
	f, err := files.acquire(of, m.root)
	if err != nil {
		m.srv.cache.remove(e)
		panic(http.ErrAbortHandler)
	}
	n, err := io.Copy(w, f)
	if err == nil && n < of.size {
		// Shorter than when cached: truncated in place since the last
		// check. The server closes the connection (fewer bytes than
		// Content-Length); the next request loads the file again.
		f.Close()
		m.srv.cache.remove(e)
		return
	}
	// After an error (the client went away) the descriptor is still good:
	// acquire seeks it back to the start.
	files.release(of, f)
}

// serveRange answers a Range request on the identity bytes through
// http.ServeContent, which implements single and multipart byte ranges,
// If-Range (strong ETag or exact date) and 416 with Content-Range.
func (m *mount) serveRange(w http.ResponseWriter, r *http.Request, e *entry) {
	rec := &statusRecorder{ResponseWriter: w}
	if e.data != nil {
		http.ServeContent(rec, r, "", e.mod, bytes.NewReader(e.data))
	} else {
		f, err := m.srv.files.acquire(e.file, m.root)
		if errors.Is(err, errChanged) {
			// Changed since cached: the ETag we set is stale. Drop the entry
			// and let the client retry rather than mix versions.
			m.srv.cache.remove(e)
			w.Header().Set("Retry-After", "0")
			http.Error(w, "503 file changed", http.StatusServiceUnavailable)
			return
		}
		if err != nil {
			m.srv.cache.remove(e)
			m.notFound(w, r)
			return
		}
		http.ServeContent(rec, r, "", e.mod, f)
		m.srv.files.release(e.file, f)
	}
	m.srv.metrics.count(m, rec.code, compress.Identity)
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

// ReadFrom keeps sendfile working through the recorder.
func (s *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{s.ResponseWriter}, src)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// preconditions evaluates the conditional headers in RFC 9110 13.2.2
// order and returns the status to answer with, or 0 to go on.
func (m *mount) preconditions(r *http.Request, e *entry, etag string) int {
	if im := r.Header.Get("If-Match"); im != "" {
		if !etagMatch(im, etag, true) {
			return http.StatusPreconditionFailed
		}
	} else if ius := r.Header.Get("If-Unmodified-Since"); ius != "" {
		if t, err := http.ParseTime(ius); err == nil && e.mod.Truncate(time.Second).After(t) {
			return http.StatusPreconditionFailed
		}
	}
	if inm := r.Header["If-None-Match"]; len(inm) > 0 {
		for _, v := range inm {
			if etagMatch(v, etag, false) {
				return http.StatusNotModified
			}
		}
		return 0
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !e.mod.Truncate(time.Second).After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

// etagMatch reports whether the If-Match / If-None-Match list contains
// etag ("*" matches any). If-None-Match uses the weak comparison (W/"x"
// matches "x"), If-Match the strong one (RFC 9110 8.8.3.2).
func etagMatch(list, etag string, strong bool) bool {
	for list != "" {
		list = strings.TrimLeft(list, " \t,")
		if list == "" {
			break
		}
		if list[0] == '*' {
			return true
		}
		weak := false
		if strings.HasPrefix(list, "W/") {
			weak = true
			list = list[2:]
		}
		if list == "" || list[0] != '"' {
			// Malformed: skip to the next member.
			i := strings.IndexByte(list, ',')
			if i < 0 {
				return false
			}
			list = list[i+1:]
			continue
		}
		end := strings.IndexByte(list[1:], '"')
		if end < 0 {
			return false
		}
		tag := list[:end+2]
		list = list[end+2:]
		if tag == etag && !(strong && weak) {
			return true
		}
	}
	return false
}

// manifest handling: Django's ManifestStaticFilesStorage writes
// staticfiles.json {"paths": {"app.css": "app.3f2a1b9c0d4e.css"}, ...};
// the values are the hashed names, which never change content.

const manifestName = "staticfiles.json"

func (m *mount) checkManifest(now time.Time) {
	if m.cfg.Immutable != ImmutableAuto {
		return
	}
	last := m.manifestChecked.Load()
	if now.UnixNano()-last < int64(m.srv.opts.Cache.Recheck) || !m.manifestChecked.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	if m.loadManifest(now) {
		m.srv.cache.purge(m)
	}
}

// loadManifest (re)reads the manifest when its mtime changed and reports
// whether it did.
func (m *mount) loadManifest(now time.Time) bool {
	m.manifestChecked.Store(now.UnixNano())
	if m.cfg.Immutable != ImmutableAuto {
		return false
	}
	fi, err := m.root.Stat(manifestName)
	m.manifestMu.RLock()
	same := err == nil && fi.ModTime().Equal(m.manifestMod) || err != nil && m.manifest == nil
	m.manifestMu.RUnlock()
	if same {
		return false
	}
	var paths map[string]bool
	var mod time.Time
	if err == nil {
		mod = fi.ModTime()
		data, rerr := m.root.ReadFile(manifestName)
		var doc struct {
			Paths map[string]string `json:"paths"`
		}
		if rerr == nil {
			rerr = json.Unmarshal(data, &doc)
		}
		if rerr != nil {
			m.srv.log.Warn("ignoring unreadable manifest", "mount", m.cfg.URL, "file", manifestName, "error", rerr)
		}
		paths = make(map[string]bool, len(doc.Paths))
		for _, hashed := range doc.Paths {
			paths[strings.TrimPrefix(hashed, "/")] = true
		}
	}
	m.manifestMu.Lock()
	m.manifest, m.manifestMod = paths, mod
	m.manifestMu.Unlock()
	return true
}
