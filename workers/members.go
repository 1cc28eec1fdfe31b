package workers

import "slices"

// Worker processes join and leave the pool through these; the supervisor
// calls them, and they only touch pool state under p.mu.

// addMember adds a booting worker. It takes no requests yet, but requests
// may queue for it.
func (p *Pool) addMember(m *member) {
	p.mu.Lock()
	p.members = append(p.members, m)
	p.mu.Unlock()
	p.met.workers.WithLabelValues("booting").Inc()
}

// workerReady puts a booted worker in service and wakes the queue.
func (p *Pool) workerReady(m *member) {
	p.mu.Lock()
	if m.state == stateBooting {
		m.state = stateReady
	}
	p.bootErr = nil
	p.dispatchLocked()
	p.mu.Unlock()
	p.met.workers.WithLabelValues("booting").Dec()
	p.met.workers.WithLabelValues("ready").Inc()
}

// bootFailed records why a worker could not start. While no worker is
// ready or booting, requests fail at once with it instead of queueing.
func (p *Pool) bootFailed(err error) {
	p.mu.Lock()
	p.bootErr = err
	p.dispatchLocked()
	p.mu.Unlock()
}

// drain stops sending requests to m; the channel is closed once its
// in-flight requests are done.
func (p *Pool) drain(m *member) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := make(chan struct{})
	if m.state == stateReady || m.state == stateDown {
		p.met.workers.WithLabelValues("ready").Dec()
		p.met.workers.WithLabelValues("draining").Inc()
	}
	m.state = stateDraining
	m.down.Store(false)
	if m.active == 0 {
		close(ch)
	} else {
		m.drained = ch
	}
	// Requests queued for m may now have to wait for another worker, or
	// fail if none is left.
	p.dispatchLocked()
	return ch
}

// removeMember takes a worker whose process has exited out of the pool.
func (p *Pool) removeMember(m *member) {
	if m == nil {
		return
	}
	p.mu.Lock()
	i := slices.Index(p.members, m)
	if i >= 0 {
		p.members = slices.Delete(p.members, i, i+1)
		state := m.state
		if state == stateDown {
			state = stateReady
		}
		p.met.workers.WithLabelValues(state.String()).Dec()
	}
	m.removed = true
	if m.drained != nil {
		close(m.drained)
		m.drained = nil
	}
	if p.closed && p.allIdle != nil && p.idleLocked() {
		close(p.allIdle)
		p.allIdle = nil
	}
	p.dispatchLocked()
	p.mu.Unlock()
	if m.idle != nil {
		m.idle()
	}
}

// setLimits applies the request-path settings of a reloaded config.
func (p *Pool) setLimits(cfg Config) {
	p.mu.Lock()
	p.cfg = cfg
	p.setSendLimits(cfg)
	p.dispatchLocked()
	p.mu.Unlock()
}
