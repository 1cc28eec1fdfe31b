package static

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse/gatehouse/internal/compress"
)

// TreeOptions tune CompressTree.
type TreeOptions struct {
	// Encodings to write; default br, zstd and gzip.
	Encodings []compress.Encoding
	// Levels; default compress.Max (the work is done once, at build time).
	Levels compress.Levels
	// MinSize skips smaller files; default 256 bytes.
	MinSize int64
	// MaxSize skips larger files (read whole into memory); default 64 MiB.
	MaxSize int64
}

// TreeStats says what CompressTree did.
type TreeStats struct {
	Files    int   // compressible files looked at
	Written  int   // siblings written
	UpToDate int   // siblings already newer than their file
	NotWorth int   // encodings skipped for saving less than 5%
	Removed  int   // stale siblings removed because no longer worth it
	BytesIn  int64 // bytes of the files compressed
	BytesOut int64 // bytes of the siblings written
	Skipped  int   // files skipped: wrong type, too small or large, dotfiles
	Errors   int   // files that could not be read or written (see error)
}

func (s TreeStats) String() string {
	return fmt.Sprintf("%d files, %d siblings written (%d -> %d bytes), %d up to date, %d not worth it, %d skipped",
		s.Files, s.Written, s.BytesIn, s.BytesOut, s.UpToDate, s.NotWorth, s.Skipped)
}

// CompressTree writes .br, .zst and .gz siblings next to every
// compressible file under dir (the `gatehouse compress DIR` command, run
// after collectstatic in a Docker build), so the server never compresses at
// run time. A sibling is written only when it saves at least 5%; one that is
// already at least as new as its file is left alone. Siblings get their
// file's mtime, which is how the server knows they match. Dotfiles and
// dot-folders are skipped, as the server never serves them. Writes are
// atomic (temporary file, then rename). ctx cancels between files.
func CompressTree(ctx context.Context, dir string, opts TreeOptions) (TreeStats, error) {
	if opts.Encodings == nil {
		opts.Encodings = []compress.Encoding{compress.Brotli, compress.Zstd, compress.Gzip}
	}
	if opts.Levels == (compress.Levels{}) {
		opts.Levels = compress.Max
	}
	if opts.MinSize == 0 {
		opts.MinSize = 256
	}
	if opts.MaxSize == 0 {
		opts.MaxSize = 64 << 20
	}
	var st TreeStats
	var firstErr error
	fail := func(err error) {
		st.Errors++
		if firstErr == nil {
			firstErr = err
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fail(err)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		name := d.Name()
		if strings.HasPrefix(name, ".") && p != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() || isSibling(name) {
			return nil
		}
		if !compress.Compressible(typeByName(name)) {
			st.Skipped++
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			fail(err)
			return nil
		}
		if fi.Size() < opts.MinSize || fi.Size() > opts.MaxSize {
			st.Skipped++
			return nil
		}
		st.Files++
		var data []byte
		for _, enc := range opts.Encodings {
			sib := p + enc.Ext()
			if sfi, err := os.Stat(sib); err == nil && !sfi.ModTime().Before(fi.ModTime()) {
				st.UpToDate++
				continue
			}
			if data == nil {
				if data, err = os.ReadFile(p); err != nil {
					fail(fmt.Errorf("reading %s: %w", p, err))
					return nil
				}
			}
			out := compress.Encode(enc, opts.Levels.Level(enc), data)
			if !compress.Worth(len(data), len(out)) {
				st.NotWorth++
				if err := os.Remove(sib); err == nil {
					st.Removed++
				}
				continue
			}
			if err := writeSibling(sib, out, fi); err != nil {
				fail(err)
				continue
			}
			st.Written++
			st.BytesIn += int64(len(data))
			st.BytesOut += int64(len(out))
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	return st, firstErr
}

// isSibling reports a precompressed file, which is not compressed again.
func isSibling(name string) bool {
	return strings.HasSuffix(name, ".br") || strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".zst")
}

func writeSibling(path string, data []byte, src fs.FileInfo) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gatehouse-compress-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(src.Mode().Perm()); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chtimes(tmp.Name(), src.ModTime(), src.ModTime()); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
