package workers

import "context"

type supervisor struct{}

func newSupervisor(p *Pool, cfg Config) (*supervisor, error)   { return &supervisor{}, nil }
func (s *supervisor) start(ctx context.Context) error           { return nil }
func (s *supervisor) stop(ctx context.Context) error            { return nil }
func (s *supervisor) reload(ctx context.Context, c Config) error { return nil }
func (s *supervisor) restartCounts() map[string]int             { return nil }

type worker struct{}

func (w *worker) timedOut()                    {}
func (w *worker) served()                      {}
func (w *worker) dialFailed(error)             {}
func (w *worker) fillStatus(ms *MemberStatus) {}
