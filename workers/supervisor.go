package workers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/backend"
)

// supervisor runs the worker processes of a wsgi or command pool. Each slot
// (workers of them) has one goroutine that owns its current worker and
// decides its restarts; other code asks it to act through the slot's
// events channel and reads snapshots under mu.
type supervisor struct {
	p   *Pool
	log *slog.Logger
	dir string // private runtime dir (0700): sockets, the WSGI shim

	ctx    context.Context // ends when the pool stops: slot loops return
	cancel context.CancelFunc
	slotWG sync.WaitGroup // slot loops and the memory sampler
	oldWG  sync.WaitGroup // retiring workers being drained and stopped

	reloadMu sync.Mutex    // one reload at a time
	recycle  chan struct{} // bounds concurrent replacements (a semaphore)

	mu       sync.Mutex
	cfg      Config
	gen      int
	slots    []*slot
	restarts map[string]int
	live     map[*worker]bool // every process not yet reaped
	lastBoot string           // output of the last boot failure, to report each distinct one once
}

type slot struct {
	id     int
	events chan event
	cur    *worker // guarded by supervisor.mu
}

// event asks a slot to replace its worker.
type event struct {
	reason string
	w      *worker    // the worker the event is about; stale events are ignored
	cfg    *Config    // reload: the new generation's config
	reply  chan error // reload: the replacement's boot result
}

// Restart reasons, as in gatehouse_worker_restarts_total.
const (
	reasonMaxRequests = "max_requests"
	reasonMemorySoft  = "memory_soft"
	reasonMemoryHard  = "memory_hard"
	reasonTimeout     = "timeout"
	reasonCrash       = "crash"
	reasonReload      = "reload"
	reasonBootFailure = "boot_failure"
)

func newSupervisor(p *Pool, cfg Config) (*supervisor, error) {
	dir, err := os.MkdirTemp("", "gatehouse-workers-")
	if err != nil {
		return nil, fmt.Errorf("workers: creating runtime dir: %w", err)
	}
	if cfg.Kind() == KindWSGI {
		if err := os.WriteFile(filepath.Join(dir, "gatehouse_wsgi.py"), shimSource, 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("workers: writing the WSGI shim: %w", err)
		}
	}
	s := &supervisor{
		p: p, log: p.log, dir: dir, cfg: cfg,
		restarts: map[string]int{},
		live:     map[*worker]bool{},
		recycle:  make(chan struct{}, max(1, cfg.Workers/4)),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func (s *supervisor) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.cfg.Workers {
		sl := &slot{id: i + 1, events: make(chan event, 8)}
		s.slots = append(s.slots, sl)
		s.slotWG.Go(func() { s.runSlot(sl) })
	}
	s.slotWG.Go(s.sampleMemory)
	return nil
}

func (s *supervisor) config() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

func (s *supervisor) countRestart(reason string) {
	s.mu.Lock()
	s.restarts[reason]++
	s.mu.Unlock()
	s.p.met.restarts.WithLabelValues(reason).Inc()
}

func (s *supervisor) restartCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.restarts))
	for k, v := range s.restarts {
		out[k] = v
	}
	return out
}

// runSlot owns one worker slot for the pool's life: boot, watch, replace.
func (s *supervisor) runSlot(sl *slot) {
	var (
		cur   *worker
		fails int // consecutive boot failures or early crashes, for backoff
	)
	setCur := func(w *worker) {
		s.mu.Lock()
		sl.cur = w
		s.mu.Unlock()
		cur = w
	}
	for {
		if cur == nil {
			cfg := s.config()
			var reply chan error
			if fails > 0 {
				d := min(100*time.Millisecond<<min(fails-1, 9), 30*time.Second)
				t := time.NewTimer(d)
				select {
				case <-s.ctx.Done():
					t.Stop()
					return
				case <-t.C:
				case ev := <-sl.events:
					// A reload while this slot cannot boot (the fix for a
					// bad deploy): try the new config now.
					t.Stop()
					if ev.cfg != nil {
						cfg, reply = *ev.cfg, ev.reply
					}
				}
			}
			w, err := s.boot(sl, cfg)
			if reply != nil {
				reply <- err
			}
			if err != nil {
				if s.ctx.Err() != nil {
					return
				}
				fails++
				s.countRestart(reasonBootFailure)
				continue
			}
			fails = 0
			setCur(w)
		}
		var exited <-chan struct{} = cur.exited
		select {
		case <-s.ctx.Done():
			return
		case <-exited:
			up := time.Since(cur.readyAt)
			s.log.Error("worker died", "worker", sl.id, "pid", cur.pid, "uptime", up.Round(time.Millisecond), "error", cur.exitErr)
			s.countRestart(reasonCrash)
			if up < 10*time.Second {
				fails++
			} else {
				fails = 0
			}
			setCur(nil)
		case ev := <-sl.events:
			if ev.w != nil && ev.w != cur {
				continue // about a worker already replaced
			}
			switch ev.reason {
			case reasonTimeout, reasonMemoryHard:
				// The worker is stuck or over the hard limit: it is no use,
				// so it goes now and the replacement boots after.
				s.countRestart(ev.reason)
				stuck := cur
				s.oldWG.Go(func() { s.kill(stuck, ev.reason) })
				setCur(nil)
				fails = 0
			default:
				// Replacement first; the old one serves until it is ready.
				cfg := s.config()
				if ev.cfg != nil {
					cfg = *ev.cfg
				}
				select {
				case s.recycle <- struct{}{}:
				case <-s.ctx.Done():
					return
				}
				w, err := s.boot(sl, cfg)
				<-s.recycle
				if err != nil {
					cur.recycling.Store(false)
					if ev.reply != nil {
						ev.reply <- err
					}
					continue
				}
				s.countRestart(ev.reason)
				old := cur
				setCur(w)
				drained := s.p.drain(old.m)
				s.oldWG.Go(func() { s.retire(old, drained, ev.reason) })
				if ev.reply != nil {
					ev.reply <- nil
				}
			}
		}
	}
}

// boot starts a worker and waits until it is ready, its process exits, or
// boot_timeout passes. A failure is logged with the worker's output, once
// per distinct output, so a crash loop does not flood the log.
func (s *supervisor) boot(sl *slot, cfg Config) (*worker, error) {
	s.mu.Lock()
	s.gen++
	gen := s.gen
	s.mu.Unlock()
	w := &worker{s: s, slot: sl.id, gen: gen, cfg: cfg, exited: make(chan struct{})}
	if cfg.MaxRequests > 0 {
		w.maxReq = uint64(cfg.MaxRequests + jitter(cfg.MaxRequestsJitter))
	}
	w.booting.Store(true)
	err := w.spawn()
	if err == nil {
		err = w.waitReady(s.ctx, cfg.BootTimeout.D())
	}
	if err != nil {
		if w.cmd != nil && w.cmd.Process != nil {
			w.signalGroup(syscall.SIGKILL)
			<-w.exited
		}
		out := w.bootOutput()
		err = fmt.Errorf("worker %d failed to boot: %w", sl.id, err)
		s.mu.Lock()
		repeated := out == s.lastBoot
		s.lastBoot = out
		s.mu.Unlock()
		if s.ctx.Err() == nil {
			if repeated {
				s.log.Warn("worker still fails to boot (same output as before)", "worker", sl.id, "error", err)
			} else {
				s.log.Error("worker failed to boot", "worker", sl.id, "error", err, "output", out)
			}
			s.p.bootFailed(fmt.Errorf("%w\n%s", err, lastLines(out, 5)))
		}
		return nil, err
	}
	s.mu.Lock()
	s.lastBoot = ""
	s.mu.Unlock()
	w.readyAt = time.Now()
	w.flushBootOutput()
	s.p.workerReady(w.m)
	s.log.Info("worker ready", "worker", sl.id, "pid", w.pid, "boot", w.readyAt.Sub(w.started).Round(time.Millisecond))
	return w, nil
}

// retire drains a replaced worker: no new requests, in-flight ones get up
// to graceful_timeout, then SIGTERM, then SIGKILL after graceful_timeout.
func (s *supervisor) retire(w *worker, drained <-chan struct{}, reason string) {
	g := w.cfg.GracefulTimeout.D()
	select {
	case <-drained:
	case <-w.exited:
	case <-time.After(g):
		s.log.Warn("retiring worker still busy after graceful_timeout", "worker", w.slot, "pid", w.pid, "reason", reason)
	}
	s.log.Info("worker retired", "worker", w.slot, "pid", w.pid, "reason", reason, "requests", w.served_.Load())
	w.terminate(g)
}

// kill stops a stuck or oversized worker at once. A WSGI worker first gets
// SIGUSR1, on which the shim dumps every thread's Python stack to stderr
// (and so to the log), and a second to write it.
func (s *supervisor) kill(w *worker, reason string) {
	s.p.drain(w.m)
	s.log.Error("killing worker", "worker", w.slot, "pid", w.pid, "reason", reason)
	if w.cfg.Kind() == KindWSGI && reason == reasonTimeout {
		w.signalGroup(syscall.SIGUSR1)
		select {
		case <-w.exited:
		case <-time.After(time.Second):
		}
	}
	w.signalGroup(syscall.SIGKILL)
	<-w.exited
}

// stop ends the slot loops and stops every worker: SIGTERM, then SIGKILL
// after graceful_timeout or when ctx ends.
func (s *supervisor) stop(ctx context.Context) error {
	s.cancel()
	s.slotWG.Wait()
	s.mu.Lock()
	var ws []*worker
	for w := range s.live {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			w.signalGroup(syscall.SIGTERM)
			t := time.NewTimer(w.cfg.GracefulTimeout.D())
			defer t.Stop()
			select {
			case <-w.exited:
			case <-t.C:
			case <-ctx.Done():
			}
			w.signalGroup(syscall.SIGKILL)
			<-w.exited
		})
	}
	wg.Wait()
	s.oldWG.Wait()
	os.RemoveAll(s.dir)
	return nil
}

// reload rolls every slot to cfg, one slot at a time: each replacement must
// be ready before its predecessor drains. If the first replacement cannot
// boot, nothing changes and the error is returned.
func (s *supervisor) reload(ctx context.Context, cfg Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.mu.Lock()
	slots := append([]*slot(nil), s.slots...)
	s.mu.Unlock()
	if len(slots) == 0 {
		return errors.New("workers: pool not started")
	}
	if cfg.Workers != len(slots) {
		s.log.Warn("app.workers changes on restart, not on reload", "running", len(slots), "configured", cfg.Workers)
	}
	for i, sl := range slots {
		reply := make(chan error, 1)
		select {
		case sl.events <- event{reason: reasonReload, cfg: &cfg, reply: reply}:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.ctx.Done():
			return backend.ErrClosed
		}
		var err error
		select {
		case err = <-reply:
		case <-ctx.Done():
			return fmt.Errorf("workers: reload: %w", ctx.Err())
		case <-s.ctx.Done():
			return backend.ErrClosed
		}
		if err != nil {
			if i == 0 {
				return fmt.Errorf("workers: reload: new generation failed, old workers keep serving: %w", err)
			}
			return fmt.Errorf("workers: reload: %d of %d workers replaced: %w", i, len(slots), err)
		}
		if i == 0 {
			s.mu.Lock()
			s.cfg = cfg
			s.mu.Unlock()
			s.p.setLimits(cfg)
		}
	}
	return nil
}

// worker is one process. Its fields are set before the process starts or
// by its own goroutines; others read the atomics.
type worker struct {
	s      *supervisor
	slot   int
	gen    int
	cfg    Config
	cmd    *exec.Cmd
	pid    int
	m      *member
	maxReq uint64

	started time.Time
	readyAt time.Time
	ready   *os.File // WSGI: read end of the readiness pipe
	network string
	address string

	exited  chan struct{} // closed once the process is reaped
	exitErr error

	booting   atomic.Bool
	recycling atomic.Bool
	served_   atomic.Uint64
	memory    atomic.Int64
	over      int // consecutive samples over max_rss; sampler goroutine only

	outMu   sync.Mutex
	bootBuf []string // output lines kept while booting
	outWG   sync.WaitGroup
}

// spawn starts the process in its own process group, with a parent-death
// signal so that it dies with gatehouse even when gatehouse is SIGKILLed.
func (w *worker) spawn() error {
	cfg := w.cfg
	base := fmt.Sprintf("w%d-%d", w.slot, w.gen)
	sock := filepath.Join(w.s.dir, base+".sock")
	var cmd *exec.Cmd
	var extra []*os.File
	env := os.Environ()
	for k, v := range cfg.Env {
		env = append(env, k+"="+v)
	}
	switch cfg.Kind() {
	case KindWSGI:
		ln, err := net.Listen("unix", sock)
		if err != nil {
			return fmt.Errorf("creating worker socket: %w", err)
		}
		ul := ln.(*net.UnixListener)
		ul.SetUnlinkOnClose(false)
		lf, err := ul.File()
		ul.Close()
		if err != nil {
			return err
		}
		defer lf.Close()
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		defer pw.Close()
		w.ready = pr
		extra = []*os.File{lf, pw}
		cmd = exec.Command(cfg.Python, "-u", filepath.Join(w.s.dir, "gatehouse_wsgi.py"))
		env = append(env, "GATEHOUSE_WSGI="+cfg.WSGI, "GATEHOUSE_THREADS="+strconv.Itoa(cfg.Threads),
			"GATEHOUSE_LISTEN_FD=3", "GATEHOUSE_READY_FD=4", "GATEHOUSE_WORKER="+strconv.Itoa(w.slot))
		w.network, w.address = "unix", sock
	case KindCommand:
		port, err := freeLoopbackPort()
		if err != nil {
			return err
		}
		cmd = exec.Command(cfg.Command[0], cfg.Command[1:]...)
		env = append(env, "PORT="+port, "GATEHOUSE_SOCKET="+sock, "GATEHOUSE_WORKER="+strconv.Itoa(w.slot))
		w.address = "127.0.0.1:" + port // or sock; waitReady decides
	}
	cmd.Env = env
	cmd.Dir = cfg.Chdir
	cmd.ExtraFiles = extra
	cmd.SysProcAttr = workerProcAttr()
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	w.started = time.Now()
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		if w.ready != nil {
			w.ready.Close()
		}
		w.bootBuf = append(w.bootBuf, err.Error())
		close(w.exited)
		return fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	w.cmd, w.pid = cmd, cmd.Process.Pid
	w.s.mu.Lock()
	w.s.live[w] = true
	w.s.mu.Unlock()
	w.m = &member{name: fmt.Sprintf("worker %d (pid %d)", w.slot, w.pid), label: "worker " + strconv.Itoa(w.slot), w: w, state: stateBooting}
	w.s.p.addMember(w.m)
	w.outWG.Add(2)
	go w.pump(outR, "stdout")
	go w.pump(errR, "stderr")
	go w.wait()
	return nil
}

func freeLoopbackPort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port, nil
}

// wait reaps the process, then kills what is left of its group (a
// grandchild it started), drains its output and takes it out of the pool.
func (w *worker) wait() {
	err := w.cmd.Wait()
	w.exitErr = err
	if err == nil {
		w.exitErr = errors.New("exited with status 0")
	}
	syscall.Kill(-w.pid, syscall.SIGKILL)
	done := make(chan struct{})
	go func() { w.outWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	if w.ready != nil {
		w.ready.Close()
	}
	w.s.p.removeMember(w.m)
	w.s.mu.Lock()
	delete(w.s.live, w)
	w.s.mu.Unlock()
	close(w.exited)
}

// pump copies one output stream to the log, line by line, tagged with the
// worker and pid. While the worker boots, lines are kept instead, so that a
// boot failure is reported once as a whole.
func (w *worker) pump(r *os.File, stream string) {
	defer w.outWG.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			text := strings.TrimRight(string(line), "\r\n")
			w.outMu.Lock()
			if w.booting.Load() {
				if len(w.bootBuf) < 200 {
					w.bootBuf = append(w.bootBuf, text)
				}
				w.outMu.Unlock()
			} else {
				w.outMu.Unlock()
				w.s.log.Info(text, "worker", w.slot, "pid", w.pid, "stream", stream)
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

func (w *worker) bootOutput() string {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	w.booting.Store(false)
	return strings.Join(w.bootBuf, "\n")
}

func (w *worker) flushBootOutput() {
	w.outMu.Lock()
	lines := w.bootBuf
	w.bootBuf = nil
	w.booting.Store(false)
	w.outMu.Unlock()
	for _, l := range lines {
		w.s.log.Info(l, "worker", w.slot, "pid", w.pid, "stream", "boot")
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady waits for the worker's readiness: the shim's handshake on the
// readiness pipe (WSGI) or, for a command, a successful connection to the
// port or socket it was given.
func (w *worker) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	if w.ready != nil {
		got := make(chan error, 1)
		go func() {
			br := bufio.NewReader(w.ready)
			line, err := br.ReadString('\n')
			if err != nil {
				got <- errors.New("exited before it was ready")
				return
			}
			if !strings.HasPrefix(line, "ready") {
				got <- fmt.Errorf("bad handshake %q", line)
				return
			}
			got <- nil
		}()
		select {
		case err := <-got:
			if err != nil {
				<-w.exited
				if w.exitErr != nil {
					return fmt.Errorf("%w (%v)", err, w.exitErr)
				}
				return err
			}
		case <-w.exited:
			return fmt.Errorf("exited before it was ready: %v", w.exitErr)
		case <-deadline.C:
			return fmt.Errorf("not ready after boot_timeout %s", timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
		tr := newWSGITransport(w.address, w.cfg.Threads)
		w.m.rt, w.m.host, w.m.idle = tr, "localhost", tr.CloseIdleConnections
		return nil
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, try := range [][2]string{{"tcp", w.address}, {"unix", filepath.Join(w.s.dir, fmt.Sprintf("w%d-%d.sock", w.slot, w.gen))}} {
			c, err := net.DialTimeout(try[0], try[1], time.Second)
			if err == nil {
				c.Close()
				tr := newTransport(try[0], try[1], w.cfg.Threads)
				w.network, w.address = try[0], try[1]
				w.m.rt, w.m.idle = tr, tr.CloseIdleConnections
				w.m.host = try[1]
				if try[0] == "unix" {
					w.m.host = "localhost"
				}
				return nil
			}
		}
		select {
		case <-w.exited:
			return fmt.Errorf("exited before it was ready: %v", w.exitErr)
		case <-deadline.C:
			return fmt.Errorf("not accepting connections on PORT or GATEHOUSE_SOCKET after boot_timeout %s", timeout)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (w *worker) signalGroup(sig syscall.Signal) {
	if w.pid > 0 {
		syscall.Kill(-w.pid, sig)
	}
}

// terminate sends SIGTERM to the group, and SIGKILL after grace.
func (w *worker) terminate(grace time.Duration) {
	w.signalGroup(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-w.exited:
		return
	case <-t.C:
		w.s.log.Warn("worker ignored SIGTERM, killing", "worker", w.slot, "pid", w.pid, "graceful_timeout", grace)
	}
	w.signalGroup(syscall.SIGKILL)
	<-w.exited
}

func (w *worker) send(ev event) {
	select {
	case w.s.slots[w.slot-1].events <- ev:
	default:
	}
}

// timedOut is called on a request goroutine when a request to w passed
// timeout: the worker is replaced.
func (w *worker) timedOut() {
	if w.recycling.CompareAndSwap(false, true) {
		w.send(event{reason: reasonTimeout, w: w})
	}
}

// served is called when a request to w completed.
func (w *worker) served() {
	n := w.served_.Add(1)
	if w.maxReq > 0 && n >= w.maxReq && w.recycling.CompareAndSwap(false, true) {
		w.send(event{reason: reasonMaxRequests, w: w})
	}
}

func (w *worker) dialFailed(error) {}

func (w *worker) fillStatus(ms *MemberStatus) {
	ms.Worker, ms.PID, ms.Started = w.slot, w.pid, w.started
	ms.Age = time.Since(w.started).Round(time.Millisecond).Seconds()
	ms.Memory = w.memory.Load()
}

// sampleMemory measures every live worker on an interval (idle and stuck
// ones too, not only at request end) and enforces max_rss / max_rss_hard.
func (s *supervisor) sampleMemory() {
	if _, err := os.Stat("/proc/self/smaps_rollup"); err != nil {
		// Not Linux (a development machine), or a kernel before 4.14.
		s.log.Warn("worker memory cannot be measured on this system, so max_rss and max_rss_hard are not enforced: it needs /proc/PID/smaps_rollup (Linux 4.14 or later)", "error", err)
		return
	}
	for {
		cfg := s.config()
		t := time.NewTimer(cfg.MemoryInterval.D())
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.mu.Lock()
		var ws []*worker
		for _, sl := range s.slots {
			if sl.cur != nil {
				ws = append(ws, sl.cur)
			}
		}
		s.mu.Unlock()
		for _, w := range ws {
			mem, err := readMemory(w.pid, cfg.Memory)
			if err != nil {
				continue
			}
			w.memory.Store(mem)
			s.p.met.memory.WithLabelValues("worker " + strconv.Itoa(w.slot)).Set(float64(mem))
			switch {
			case cfg.MaxRSSHard > 0 && mem > int64(cfg.MaxRSSHard):
				if w.recycling.CompareAndSwap(false, true) {
					s.log.Error("worker over max_rss_hard", "worker", w.slot, "pid", w.pid, "memory", mem, "limit", int64(cfg.MaxRSSHard))
					w.send(event{reason: reasonMemoryHard, w: w})
				}
			case cfg.MaxRSS > 0 && mem > int64(cfg.MaxRSS):
				w.over++
				// A few samples in a row, and not a fresh worker: a spike
				// does not churn workers.
				if w.over >= 3 && time.Since(w.readyAt) >= minRecycleAge && w.recycling.CompareAndSwap(false, true) {
					s.log.Warn("worker over max_rss, recycling", "worker", w.slot, "pid", w.pid, "memory", mem, "limit", int64(cfg.MaxRSS))
					w.send(event{reason: reasonMemorySoft, w: w})
				}
			default:
				w.over = 0
			}
		}
	}
}

// minRecycleAge is the youngest a worker may be to be recycled for memory.
var minRecycleAge = 5 * time.Second

// readMemory returns a process's memory as kind says: "unshared" is
// Private_Dirty + Swap from smaps_rollup (what the worker alone costs;
// pages shared with its siblings after fork or with the page cache are not
// counted), "rss" is Rss, "pss" is Pss.
func readMemory(pid int, kind string) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, err
	}
	return parseSmapsRollup(b, kind), nil
}

func parseSmapsRollup(b []byte, kind string) int64 {
	var total int64
	for line := range bytes.Lines(b) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var want bool
		switch kind {
		case "rss":
			want = string(name) == "Rss"
		case "pss":
			want = string(name) == "Pss"
		default:
			want = string(name) == "Private_Dirty" || string(name) == "Swap"
		}
		if !want {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) >= 1 {
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			total += kb << 10
		}
	}
	return total
}
