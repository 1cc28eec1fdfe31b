package compress

import (
	"bytes"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/gatehouse/gatehouse/internal/ascii"
)

// Encoding is an HTTP content coding gatehouse can produce.
type Encoding uint8

// The codings, in the order of the Encoding values. Identity means "no
// content coding".
const (
	Identity Encoding = iota
	Gzip
	Brotli
	Zstd
	numEncodings
)

// Preferred lists the codings gatehouse produces, best first. When a client
// accepts several with the same q-value, the first one here wins: brotli
// and zstd both beat gzip on size, brotli is accepted more widely.
var Preferred = [...]Encoding{Brotli, Zstd, Gzip}

var names = [numEncodings]string{"identity", "gzip", "br", "zstd"}
var exts = [numEncodings]string{"", ".gz", ".br", ".zst"}

// String returns the token used in Content-Encoding ("br", "zstd", "gzip",
// "identity").
func (e Encoding) String() string {
	if e < numEncodings {
		return names[e]
	}
	return "unknown"
}

// Ext returns the file-name suffix of a precompressed sibling (".br",
// ".zst", ".gz"), or "" for Identity.
func (e Encoding) Ext() string {
	if e < numEncodings {
		return exts[e]
	}
	return ""
}

// ParseEncoding maps a content-coding token to an Encoding. x-gzip is an
// alias of gzip (RFC 9110 8.4.1.3).
func ParseEncoding(s string) (Encoding, bool) {
	switch {
	case ascii.EqualFold(s, "br"):
		return Brotli, true
	case ascii.EqualFold(s, "zstd"):
		return Zstd, true
	case ascii.EqualFold(s, "gzip"), ascii.EqualFold(s, "x-gzip"):
		return Gzip, true
	case ascii.EqualFold(s, "identity"):
		return Identity, true
	}
	return Identity, false
}

// Set is a set of encodings, a bit per Encoding.
type Set uint8

// All is every coding gatehouse produces, identity included.
const All Set = 1<<Identity | 1<<Gzip | 1<<Brotli | 1<<Zstd

// Has reports whether e is in the set.
func (s Set) Has(e Encoding) bool { return s&(1<<e) != 0 }

// With returns the set plus e.
func (s Set) With(e Encoding) Set { return s | 1<<e }

// Levels are the compression levels for each coding. A zero field means
// that coding's default (see Defaults).
type Levels struct {
	// Gzip is 1 (fastest) to 9 (smallest); 0 means 5.
	Gzip int `yaml:"gzip"`
	// Brotli is 1 (fastest) to 11 (smallest); 0 means 4 for responses
	// compressed on the fly.
	Brotli int `yaml:"brotli"`
	// Zstd is 1 (fastest) to 4 (smallest), klauspost/compress's speed
	// levels; 0 means 2 (its default, about zstd -3).
	Zstd int `yaml:"zstd"`
}

// Defaults fills zero levels with the values documented on the fields.
func (l *Levels) Defaults() {
	if l.Gzip == 0 {
		l.Gzip = 5
	}
	if l.Brotli == 0 {
		l.Brotli = 4
	}
	if l.Zstd == 0 {
		l.Zstd = 2
	}
}

// Max are the levels for work done once and kept (precompressed siblings
// and the static file cache): the smallest output each coding offers.
var Max = Levels{Gzip: 9, Brotli: 11, Zstd: 4}

// Level returns the level for e.
func (l Levels) Level(e Encoding) int {
	switch e {
	case Gzip:
		return l.Gzip
	case Brotli:
		return l.Brotli
	case Zstd:
		return l.Zstd
	}
	return 0
}

func clampLevel(e Encoding, level int) int {
	lo, hi := 1, 9
	switch e {
	case Brotli:
		lo, hi = 0, 11
	case Zstd:
		lo, hi = 1, 4
	}
	return min(max(level, lo), hi)
}

// Writer is a streaming encoder. Flush pushes out everything written so
// far as a decodable prefix; Close ends the stream but not dst.
type Writer interface {
	io.WriteCloser
	Flush() error
}

// Pools of writers, per coding and level: a brotli or zstd writer holds
// hundreds of KiB of tables, so building one per response would dominate
// the cost of compressing a small one.
var pools [numEncodings][12]sync.Pool

// NewWriter returns a pooled writer for e at level (clamped to the coding's
// range) that writes to dst. Give it back with PutWriter after Close.
// It panics for Identity.
func NewWriter(e Encoding, level int, dst io.Writer) Writer {
	level = clampLevel(e, level)
	if w, ok := pools[e][level].Get().(Writer); ok {
		switch w := w.(type) {
		case *gzip.Writer:
			w.Reset(dst)
		case *brotli.Writer:
			w.Reset(dst)
		case *zstd.Encoder:
			w.Reset(dst)
		}
		return w
	}
	switch e {
	case Gzip:
		w, _ := gzip.NewWriterLevel(dst, level) // level is clamped: no error
		return w
	case Brotli:
		// A 256 KiB window instead of the default 4 MiB: pooled writers
		// stay small, and responses compressed on the fly lose little.
		return brotli.NewWriterOptions(dst, brotli.WriterOptions{Quality: level, LGWin: 18})
	case Zstd:
		w, _ := zstd.NewWriter(dst,
			zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
			// One goroutine per stream: HTTP responses are many and small,
			// and a background goroutine per writer would outlive requests.
			zstd.WithEncoderConcurrency(1),
			// Browsers cap the zstd window at 8 MiB (RFC 8878 section 3.1.1.1.2);
			// 1 MiB keeps memory per pooled writer small.
			zstd.WithWindowSize(1<<20),
			zstd.WithLowerEncoderMem(true))
		return w
	}
	panic("compress: NewWriter for " + e.String())
}

// PutWriter returns w, made by NewWriter(e, level, ...) and closed, to its pool.
func PutWriter(e Encoding, level int, w Writer) {
	switch w := w.(type) {
	case *gzip.Writer:
		w.Reset(io.Discard)
	case *brotli.Writer:
		w.Reset(io.Discard)
	case *zstd.Encoder:
		w.Reset(nil)
	}
	pools[e][clampLevel(e, level)].Put(w)
}

// Encode compresses src in one piece with e at level. Unlike a streaming
// writer it knows the input size, so it sizes the brotli window and the zstd
// work to fit: a brotli writer at level 11 with the default window holds
// tens of MiB, which for a 2 KB file would be all waste.
func Encode(e Encoding, level int, src []byte) []byte {
	level = clampLevel(e, level)
	var buf bytes.Buffer
	buf.Grow(len(src)/3 + 64)
	switch e {
	case Identity:
		return bytes.Clone(src)
	case Brotli:
		w := brotli.NewWriterOptions(&buf, brotli.WriterOptions{Quality: level, LGWin: windowBits(len(src))})
		w.Write(src) // writes to a bytes.Buffer cannot fail
		w.Close()
		return buf.Bytes()
	case Zstd:
		return oneShotZstd(level).EncodeAll(src, make([]byte, 0, len(src)/3+64))
	}
	w := NewWriter(e, level, &buf)
	w.Write(src)
	w.Close()
	PutWriter(e, level, w)
	return buf.Bytes()
}

// windowBits is the smallest brotli window (10 to 24 bits) that holds n bytes.
func windowBits(n int) int {
	b := 10
	for b < 24 && 1<<b < n {
		b++
	}
	return b
}

// oneShot holds one zstd encoder per level for EncodeAll, which is safe
// for concurrent use; two goroutines each, as the machine may be small.
var oneShot [5]struct {
	once sync.Once
	enc  *zstd.Encoder
}

func oneShotZstd(level int) *zstd.Encoder {
	s := &oneShot[level]
	s.once.Do(func() {
		s.enc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
			zstd.WithEncoderConcurrency(2), zstd.WithLowerEncoderMem(true))
	})
	return s.enc
}

// NewReader returns a decoder for e reading from src, for tests and tools
// that check what was encoded.
func NewReader(e Encoding, src io.Reader) (io.ReadCloser, error) {
	switch e {
	case Gzip:
		return gzip.NewReader(src)
	case Brotli:
		return io.NopCloser(brotli.NewReader(src)), nil
	case Zstd:
		d, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	}
	return io.NopCloser(src), nil
}

// Decode decodes a whole body encoded with e.
func Decode(e Encoding, b []byte) ([]byte, error) {
	r, err := NewReader(e, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// Worth reports whether an encoded size saves at least 5% over the
// original: below that the CPU a client spends decoding, and the cache
// space, are not paid back.
func Worth(original, encoded int) bool {
	return int64(encoded)*100 <= int64(original)*95
}
