package h2srv

import "sync"

// maxIdleWorkers bounds the handler goroutines kept waiting for work.
const maxIdleWorkers = 256

// workerPool keeps handler goroutines between requests. A fresh goroutine
// per request starts with a small stack and copies it as the handler and
// the response encoding go deeper (a fifth of the server's CPU time in a
// profile of small GETs); a worker that already served one request has the
// stack it needs. Idle workers are reused last-in first-out, so the ones in
// use stay warm.
type workerPool struct {
	mu     sync.Mutex
	idle   []*worker
	closed bool
}

type worker struct{ work chan *stream }

// run runs st's handler on an idle worker or a new one.
func (p *workerPool) run(st *stream) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.work <- st
		return
	}
	p.mu.Unlock()
	w := &worker{work: make(chan *stream, 1)}
	go w.loop(p, st)
}

func (w *worker) loop(p *workerPool, st *stream) {
	for {
		st.c.runHandler(st)
		p.mu.Lock()
		if p.closed || len(p.idle) >= maxIdleWorkers {
			p.mu.Unlock()
			return
		}
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		var ok bool
		if st, ok = <-w.work; !ok {
			return
		}
	}
}

// close ends the idle workers; busy ones end when their handler returns.
func (p *workerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, w := range p.idle {
		close(w.work)
	}
	p.idle = nil
}
