package static

import (
	"container/list"
	"sync"
	"sync/atomic"
	"time"
)

// cacheKey names a file: its mount and its root-relative path. A struct,
// not a joined string, so a lookup allocates nothing.
type cacheKey struct {
	m   *mount
	rel string
}

// entry is what the cache knows about one file: its identity (size, mtime,
// inode) for noticing changes, the response headers ready to assign, the
// bytes when the file is small, and the encoded variants, computed once.
type entry struct {
	key  cacheKey
	size int64
	mod  time.Time
	ino  uint64

	hdr   headerSet // identity response
	data  []byte    // up to CacheConfig.MaxFile, or
	file  *openFile // a larger file, sent with sendfile
	ctype string

	compressible bool
	variants     [4]variantSlot

	checked atomic.Int64 // unix nanos of the last stat
	elem    *list.Element
	cost    int64 // bytes charged to the cache; guarded by cache.mu
}

// variantSlot holds one encoding of a file, settled at most once. It is
// not a sync.Once because a variant whose compression was skipped (all
// compression slots busy) stays unsettled and is tried again later.
type variantSlot struct {
	mu   sync.Mutex
	done atomic.Bool
	v    *variant // nil when done: no such variant (not worth it, or impossible)
}

// variant is an encoded representation.
type variant struct {
	hdr  headerSet
	data []byte    // in memory, or
	file *openFile // a precompressed sibling to send from disk
	size int64
	// sib is the precompressed sibling it came from (zero name when made
	// here), checked with the file itself for changes.
	sib fileID
}

// headerSet holds header values built once per representation, assigned by
// reference on every response. They are never modified after they are built.
type headerSet struct {
	contentType   []string
	contentLength []string
	etag          []string
	etagValue     string
	lastModified  []string
	cacheControl  []string
	encoding      []string // nil for identity
	csp           []string
	disposition   []string
}

// cache is a size- and count-bounded LRU of entries shared by all mounts.
type cache struct {
	files      *filePool // retires the open files of entries that leave
	mu         sync.Mutex
	m          map[cacheKey]*entry
	lru        list.List
	bytes      int64
	maxBytes   int64
	maxEntries int
	onEvict    func()
}

func newCache(maxBytes int64, maxEntries int, files *filePool) *cache {
	return &cache{m: map[cacheKey]*entry{}, maxBytes: maxBytes, maxEntries: maxEntries, files: files}
}

func (c *cache) get(k cacheKey) *entry {
	c.mu.Lock()
	e := c.m[k]
	if e != nil {
		c.lru.MoveToFront(e.elem)
	}
	c.mu.Unlock()
	return e
}

// put inserts e (replacing any entry for its key) and evicts from the cold
// end until the bounds hold again.
func (c *cache) put(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[e.key]; old != nil {
		c.removeLocked(old)
	}
	e.cost = entryOverhead + int64(len(e.data))
	e.elem = c.lru.PushFront(e)
	c.m[e.key] = e
	c.bytes += e.cost
	c.evictLocked()
}

// grow charges n more bytes to e (a variant was settled), and of, the
// variant's open file if any, is now e's to retire.
func (c *cache) grow(e *entry, n int64, of *openFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[e.key] != e {
		// Already evicted or replaced: its memory goes with it, and so do
		// the descriptors (removeLocked may have run before the variant
		// was settled, and so not seen of).
		c.files.retire(of)
		return
	}
	e.cost += n
	c.bytes += n
	c.evictLocked()
}

func (c *cache) remove(e *entry) {
	c.mu.Lock()
	if c.m[e.key] == e {
		c.removeLocked(e)
	}
	c.mu.Unlock()
}

// purge drops every entry of mount m (its manifest changed).
func (c *cache) purge(m *mount) {
	c.mu.Lock()
	for k, e := range c.m {
		if k.m == m {
			c.removeLocked(e)
		}
	}
	c.mu.Unlock()
}

func (c *cache) removeLocked(e *entry) {
	c.lru.Remove(e.elem)
	delete(c.m, e.key)
	c.bytes -= e.cost
	// Its idle descriptors close now; those in use, after their responses.
	c.files.retire(e.file)
	for i := range e.variants {
		if s := &e.variants[i]; s.done.Load() && s.v != nil {
			c.files.retire(s.v.file)
		}
	}
}

func (c *cache) evictLocked() {
	for (c.bytes > c.maxBytes || len(c.m) > c.maxEntries) && c.lru.Len() > 1 {
		old := c.lru.Back().Value.(*entry)
		c.removeLocked(old)
		if c.onEvict != nil {
			c.onEvict()
		}
	}
}

func (c *cache) stats() (entries int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m), c.bytes
}

// entryOverhead is a rough count of what an entry costs beyond its bytes
// (struct, headers, map slot), so that many tiny files still fill the budget.
const entryOverhead = 1024
