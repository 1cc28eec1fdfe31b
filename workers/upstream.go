package workers

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// setUpstreams makes the member list match cfg.Upstreams. Addresses that
// stay keep their member (state, counters, idle connections); removed ones
// finish their in-flight requests and then close their connections.
func (p *Pool) setUpstreams(cfg Config) {
	p.mu.Lock()
	old := map[string]*member{}
	for _, m := range p.members {
		old[m.name] = m
	}
	var members []*member
	for _, addr := range cfg.Upstreams {
		if m, ok := old[addr]; ok {
			members = append(members, m)
			delete(old, addr)
			continue
		}
		tr := newTransport("tcp", addr, cfg.UpstreamConcurrency)
		members = append(members, &member{
			name: addr, label: addr, host: addr, rt: tr, idle: tr.CloseIdleConnections,
			state: stateReady,
		})
		p.met.healthy.WithLabelValues(addr).Set(1)
	}
	for _, m := range old {
		m.removed, m.state = true, stateDraining
		m.down.Store(false)
		if m.idle != nil && m.active == 0 {
			m.idle()
		}
		p.met.healthy.DeleteLabelValues(m.label)
	}
	p.members = members
	p.cfg = cfg
	p.setSendLimits(cfg)
	p.dispatchLocked()
	p.mu.Unlock()
}

// healthLoop runs the active health check, when a path is configured: every
// interval each upstream gets a GET, and the answer decides its state. It
// owns no state of its own; results go through markUp/markDown.
func (p *Pool) healthLoop() {
	for {
		p.mu.Lock()
		hc := p.cfg.HealthCheck
		members := append([]*member(nil), p.members...)
		p.mu.Unlock()
		if hc.Path != "" {
			for _, m := range members {
				if err := p.check(m, hc); err != nil {
					p.markDown(m, err)
				} else {
					p.markUp(m)
				}
			}
		}
		t := time.NewTimer(hc.Interval.D())
		select {
		case <-p.bg.Done():
			t.Stop()
			return
		case <-p.hcRestart:
			t.Stop()
		case <-t.C:
		}
	}
}

func (p *Pool) check(m *member, hc HealthCheck) error {
	ctx, cancel := context.WithTimeout(p.bg, hc.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+m.host+hc.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "gatehouse-health-check")
	resp, err := m.rt.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("health check %s: %w", hc.Path, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("health check %s: status %d", hc.Path, resp.StatusCode)
	}
	return nil
}
