package static

import (
	"container/list"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Which bytes go out with sendfile: a representation larger than
// CacheConfig.MaxFile. Smaller ones are written from memory, the body in
// the same writev as the head. Sending a 70 KB precompressed jquery.js
// with sendfile from a kept descriptor instead was measured (2 vCPU,
// loopback, wrk -c32) and cost more CPU per response, server and client
// together, than the copy it saves: 54 us against 45 us, because the head
// then leaves as a packet of its own; with the head corked (TCP_CORK or
// MSG_MORE, as nginx's tcp_nopush does) it came out even, 44 us.

// maxIdlePerFile bounds the idle descriptors kept for one file: as many
// as responses of it were in flight at once, up to this.
const maxIdlePerFile = 32

// errChanged reports that a file opened again is no longer the one the
// cache described (size, mtime or inode differ).
var errChanged = errors.New("static: file changed")

// fileID is what identifies the version of a file: a change to any of
// these means the cached headers (ETag, Content-Length) no longer hold.
type fileID struct {
	name string // root-relative
	size int64
	mod  time.Time
	ino  uint64
}

func idOf(name string, fi fs.FileInfo) fileID {
	return fileID{name: name, size: fi.Size(), mod: fi.ModTime(), ino: inode(fi)}
}

// same reports whether fi still describes the file id names.
func (id *fileID) same(fi fs.FileInfo) bool {
	return fi.Mode().IsRegular() && fi.Size() == id.size && fi.ModTime().Equal(id.mod) && inode(fi) == id.ino
}

// openFile is one file that responses are sent from with sendfile(2): a
// file too large for memory, or a large precompressed sibling. It keeps
// the descriptors of earlier responses for reuse, so a hot file costs an
// lseek per response instead of openat, fstat, close and the runtime's
// fcntl and epoll_ctl calls around them.
//
// A descriptor is owned by one response at a time (sendfile reads from
// the descriptor's own offset, so two responses cannot share one). The
// cache entry that holds an openFile retires it when the entry is evicted
// or replaced; a response still sending from one of its descriptors keeps
// that descriptor until it is done, and it is closed then.
type openFile struct {
	fileID
	pool *filePool

	// Guarded by pool.mu.
	idle    []*os.File
	elem    *list.Element // in pool.lru; may stay there with no idle descriptor
	retired bool
}

// filePool owns every idle descriptor of the server, bounded in number
// (CacheConfig.Files): past the bound, the least recently used file's
// idle descriptors are closed first.
type filePool struct {
	mu     sync.Mutex
	lru    list.List // *openFile, most recently released first
	idle   int
	max    int
	closed bool
	opens  prometheus.Counter
	opened atomic.Int64 // the same count, readable in tests
}

func newFilePool(max int, opens prometheus.Counter) *filePool {
	return &filePool{max: max, opens: opens}
}

// file makes an openFile for id, adopting f (which may be nil) as its
// first idle descriptor.
func (p *filePool) file(id fileID, f *os.File) *openFile {
	of := &openFile{fileID: id, pool: p}
	if f != nil {
		p.release(of, f)
	}
	return of
}

// acquire returns a descriptor of of positioned at the start, for the
// caller alone until it calls release. A new descriptor is opened through
// root (so the usual confinement applies) and checked against the cached
// identity: errChanged when the file on disk is another one now.
func (p *filePool) acquire(of *openFile, root *os.Root) (*os.File, error) {
	p.mu.Lock()
	if n := len(of.idle); n > 0 {
		f := of.idle[n-1]
		of.idle[n-1] = nil
		of.idle = of.idle[:n-1]
		p.idle--
		p.mu.Unlock()
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	p.mu.Unlock()
	p.opens.Inc()
	p.opened.Add(1)
	f, err := root.Open(of.name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !of.same(fi) {
		f.Close()
		return nil, errChanged
	}
	return f, nil
}

// release gives f back after a response: kept for the next one, or closed
// when of is retired, the server closed, or the bounds are reached.
func (p *filePool) release(of *openFile, f *os.File) {
	p.mu.Lock()
	if of.retired || p.closed || p.max <= 0 || len(of.idle) >= maxIdlePerFile {
		p.mu.Unlock()
		f.Close()
		return
	}
	of.idle = append(of.idle, f)
	p.idle++
	if of.elem == nil {
		of.elem = p.lru.PushFront(of)
	} else {
		p.lru.MoveToFront(of.elem)
	}
	for p.idle > p.max {
		// Close one idle descriptor of the coldest file; files left with
		// none leave the list (lazily: acquire does not touch the list, so
		// a hot file does not allocate a list element per response).
		back := p.lru.Back()
		cold := back.Value.(*openFile)
		if n := len(cold.idle); n > 0 {
			cold.idle[n-1].Close()
			cold.idle[n-1] = nil
			cold.idle = cold.idle[:n-1]
			p.idle--
		}
		if len(cold.idle) == 0 {
			p.lru.Remove(back)
			cold.elem = nil
		}
	}
	p.mu.Unlock()
}

// retire closes of's idle descriptors and makes every later release close
// its descriptor: of's cache entry is gone. Responses may still acquire
// (opening the file afresh, checked) until they are done with the entry.
func (p *filePool) retire(of *openFile) {
	if of == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	of.retired = true
	p.dropLocked(of)
}

func (p *filePool) dropLocked(of *openFile) {
	for i, f := range of.idle {
		f.Close()
		of.idle[i] = nil
	}
	p.idle -= len(of.idle)
	of.idle = nil
	if of.elem != nil {
		p.lru.Remove(of.elem)
		of.elem = nil
	}
}

// close closes every idle descriptor; descriptors in use are closed when
// their responses release them.
func (p *filePool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for e := p.lru.Front(); e != nil; {
		next := e.Next()
		of := e.Value.(*openFile)
		of.retired = true
		p.dropLocked(of)
		e = next
	}
}

// idleCount is the number of idle descriptors (for tests).
func (p *filePool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle
}
