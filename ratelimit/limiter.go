package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"hash/maphash"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// Options are the Limiter's collaborators.
type Options struct {
	// Logger receives decisions worth a line (dry-run refusals, Redis
	// outages, key file reloads). Nil: slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics. Nil: metrics are kept but not
	// registered.
	Registerer prometheus.Registerer
	// Clock returns the current time. Nil: the time the front received
	// the request (reqinfo.Info.Start) when it is set, else the monotonic
	// clock, read once per request. Tests pass a fake, which is then read
	// for every request.
	Clock func() time.Time
}

// Limiter is the rate-limit middleware. It is safe for concurrent use;
// Reload swaps its configuration while requests run.
type Limiter struct {
	log     *slog.Logger
	now     func() time.Time
	fake    bool      // Options.Clock was given
	base    time.Time // with its monotonic reading: clock counts from it
	baseNs  int64     // base.UnixNano()
	seed    maphash.Seed
	ipKey   [3]uint64 // hashIP's secret
	metrics *metrics
	conc    *concurrency
	// locks guard the shards of every memory store this Limiter creates,
	// and the decision counters' cells that takeTAT counts in.
	locks *shardLocks

	state atomic.Pointer[state]

	mu      sync.Mutex // serialises Reload, key reloads and Close
	watcher *keyWatcher
	closed  bool

	dryRunLogged atomic.Int64 // unix second of the last dry-run log line
}

// state is one compiled configuration; requests load it once and use it
// to the end, so a reload never mixes two configurations in one decision.
type state struct {
	cfg     Config
	masks   ipMasks  // cfg's ipv4_prefix and ipv6_prefix, for maskIP
	keyHdr  string   // identify.header in canonical form
	plans   []string // plan names, indexed by keyEntry.plan
	planIdx map[string]int
	ip      *policy // nil: no IP limit
	plan    *policy
	rules   []*rule
	keys    *keySet
	jwt     *jwtVerifier
	mem     *memoryStore // the memory store, or Redis's local fallback
	redis   *redisStore  // nil for the memory store
}

// policy is one kind of bucket: its name (in headers and metrics), the
// stable id that keys its buckets, and its limit per plan.
type policy struct {
	name string
	id   uint64
	// limits[plan+1] is the limit for a plan; limits[0] for keyless
	// requests. A zero interval means the policy does not apply.
	limits []policyParams
	// policyHeader[plan+1] is the RateLimit-Policy item, precomputed;
	// policyValue[plan+1] the same as a header value, shared by every
	// response (its capacity is its length, so an Add by a later handler
	// copies rather than writes into it).
	policyHeader []string
	policyValue  [][]string
	headerName   []string // the quoted name alone, for RateLimit
	byIP         bool
	counters     [][numResults]*stripedCounter
}

type rule struct {
	pol     *policy
	path    string
	methods []string
}

func (r *rule) matches(req *http.Request) bool {
	p := req.URL.Path
	if !strings.HasPrefix(p, r.path) {
		return false
	}
	// "/login" covers "/login" and "/login/x" but not "/loginx".
	if len(p) > len(r.path) && !strings.HasSuffix(r.path, "/") && p[len(r.path)] != '/' {
		return false
	}
	if len(r.methods) == 0 {
		return true
	}
	for _, m := range r.methods {
		if m == req.Method {
			return true
		}
	}
	return false
}

// New builds a Limiter from a validated config (Defaults and Validate are
// called again here, so a caller that skipped them still gets errors).
func New(cfg Config, opts Options) (*Limiter, error) {
	l := &Limiter{
		log:   opts.Logger,
		now:   opts.Clock,
		base:  time.Now(),
		seed:  maphash.MakeSeed(),
		conc:  newConcurrency(),
		locks: new(shardLocks),
	}
	for i := range l.ipKey {
		l.ipKey[i] = rand.Uint64() // the runtime's ChaCha8: unpredictable
	}
	l.baseNs = l.base.UnixNano()
	if l.log == nil {
		l.log = slog.Default()
	}
	l.log = l.log.With("component", "ratelimit")
	if l.now == nil {
		l.now = time.Now
	} else {
		l.fake = true
	}
	l.metrics = newMetrics(opts.Registerer, l)
	st, err := l.compile(cfg, nil)
	if err != nil {
		return nil, err
	}
	l.state.Store(st)
	l.startWatcher(st)
	return l, nil
}

// Reload applies a new configuration. Buckets survive when the store is
// unchanged (same store, max_keys and redis settings): a policy keeps its
// buckets while its name stays ("ip", the plan policy, a rule's name), and
// a changed rate applies to the level a bucket has. The keys file is read
// again. On error the old configuration stays.
func (l *Limiter) Reload(cfg Config) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return errors.New("ratelimit: limiter closed")
	}
	old := l.state.Load()
	st, err := l.compile(cfg, old)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	l.state.Store(st)
	if old.redis != nil && old.redis != st.redis {
		old.redis.close()
	}
	w := l.detachWatcher()
	l.startWatcher(st)
	l.log.Info("rate limits reloaded", "store", st.cfg.Store, "rules", len(st.rules), "plans", len(st.plans))
	l.mu.Unlock()
	w.wait()
	return nil
}

// Close stops the key file watcher and the Redis client. Requests that
// still arrive are served with the last configuration, falling back as if
// Redis were down.
func (l *Limiter) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	w := l.detachWatcher()
	if st := l.state.Load(); st.redis != nil {
		st.redis.close()
	}
	l.mu.Unlock()
	// Wait outside the lock: the watcher may be waiting for it.
	w.wait()
	return nil
}

func sameStore(a, b Config) bool {
	return a.Store == b.Store && a.MaxKeys == b.MaxKeys && a.Redis == b.Redis
}

// compile turns a config into a state, reusing old's stores when allowed.
func (l *Limiter) compile(cfg Config, old *state) (*state, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	st := &state{cfg: cfg, planIdx: map[string]int{}, keyHdr: textproto.CanonicalMIMEHeaderKey(cfg.Identify.Header),
		masks: makeIPMasks(cfg.IPv4Prefix, cfg.IPv6Prefix)}
	for name := range cfg.Plans {
		st.plans = append(st.plans, name)
	}
	slices.Sort(st.plans)
	for i, n := range st.plans {
		st.planIdx[n] = i
	}
	np := len(st.plans) + 1
	mk := func(name string, byIP bool) *policy {
		h := fnv.New64a()
		h.Write([]byte(name))
		p := &policy{name: name, id: h.Sum64(), byIP: byIP,
			limits: make([]policyParams, np), policyHeader: make([]string, np), policyValue: make([][]string, np), headerName: make([]string, np)}
		return p
	}
	if !cfg.IP.Rate.IsZero() {
		st.ip = mk("ip", true)
		st.ip.limits[0] = paramsOf(cfg.IP)
	}
	if len(st.plans) > 0 {
		st.plan = mk("plan", false)
		for i, n := range st.plans {
			st.plan.limits[i+1] = paramsOf(cfg.Plans[n])
		}
	}
	for _, rc := range cfg.Rules {
		r := &rule{pol: mk("rule:"+rc.Name, rc.By == "ip"), path: rc.Path, methods: rc.Methods}
		base := Limit{rc.Rate, rc.Burst}
		for i := range np {
			lim := base
			if i > 0 {
				if pl, ok := rc.Plans[st.plans[i-1]]; ok {
					lim = pl
				}
			}
			if !lim.Rate.IsZero() {
				r.pol.limits[i] = paramsOf(lim)
			}
		}
		r.pol.name = rc.Name
		st.rules = append(st.rules, r)
	}
	for _, p := range st.policies() {
		for i, lp := range p.limits {
			name := p.name
			if p == st.plan && i > 0 {
				name = st.plans[i-1]
			}
			p.policyHeader[i] = policyItem(name, lp)
			p.headerName[i] = sfString(name)
			p.policyValue[i] = []string{p.policyHeader[i]}[:1:1]
		}
		l.metrics.bind(p, st.plans)
	}
	if cfg.Identify.KeysFile != "" {
		ks, err := loadKeys(cfg.Identify.KeysFile, st.planIdx)
		if err != nil {
			return nil, fmt.Errorf("ratelimit: %w", err)
		}
		st.keys = ks
	}
	var err error
	if st.jwt, err = newJWTVerifier(cfg.Identify.JWT, l.now); err != nil {
		return nil, fmt.Errorf("ratelimit: identify.jwt: %w", err)
	}
	if old != nil && sameStore(old.cfg, cfg) {
		st.mem, st.redis = old.mem, old.redis
		return st, nil
	}
	st.mem = newMemoryStore(cfg.MaxKeys, l.locks)
	if cfg.Store != "memory" {
		if st.redis, err = newRedisStore(cfg, l.log, l.metrics); err != nil {
			return nil, fmt.Errorf("ratelimit: store: %w", err)
		}
	}
	return st, nil
}

func (st *state) policies() []*policy {
	var out []*policy
	if st.ip != nil {
		out = append(out, st.ip)
	}
	if st.plan != nil {
		out = append(out, st.plan)
	}
	for _, r := range st.rules {
		out = append(out, r.pol)
	}
	return out
}

func paramsOf(l Limit) policyParams {
	return policyParams{interval: int64(interval(l.Rate)), burst: int64(l.Burst)}
}

// policyItem formats one RateLimit-Policy member
// (draft-ietf-httpapi-ratelimit-headers): quota q = the burst, over the
// window w in which an empty bucket fills again, so q/w is the steady rate.
func policyItem(name string, p policyParams) string {
	if p.interval == 0 {
		return ""
	}
	w := (time.Duration(p.burst*p.interval) + time.Second - 1) / time.Second
	return sfString(name) + ";q=" + strconv.FormatInt(p.burst, 10) + ";w=" + strconv.FormatInt(int64(max(w, 1)), 10)
}

// sfString writes name as a Structured Field string (RFC 8941 section
// 3.3.3): printable ASCII only, with " and \ escaped; anything else
// becomes "?".
func sfString(name string) string {
	b := make([]byte, 0, len(name)+2)
	b = append(b, '"')
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c > 0x7e:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}

// identity is who a request says it is.
type identity struct {
	plan    int // -1: keyless
	subject string
}

// identify reads the API key or token. A non-nil error is the 401 text.
func (st *state) identify(r *http.Request) (identity, error) {
	id := &st.cfg.Identify
	if st.keys != nil {
		key, ok := "", false
		if st.keyHdr != "" {
			if v := r.Header[st.keyHdr]; len(v) > 0 && v[0] != "" {
				key, ok = v[0], true
			}
		}
		if !ok && id.Query != "" {
			key, ok = queryValue(r.URL.RawQuery, id.Query)
		}
		if ok {
			e, found := st.keys.keys[key]
			if !found {
				return identity{plan: -1}, &errAuth{"unknown API key"}
			}
			return identity(e), nil
		}
	}
	if st.jwt != nil {
		if tok, ok := bearer(r.Header); ok {
			plan, sub, err := st.jwt.verify(tok)
			if err != nil {
				return identity{plan: -1}, err
			}
			idx, found := st.planIdx[plan]
			if !found {
				return identity{plan: -1}, &errAuth{"token names an unknown plan"}
			}
			return identity{plan: idx, subject: sub}, nil
		}
	}
	return identity{plan: -1}, nil
}

// check is one bucket a request must fit in.
type check struct {
	pol    *policy
	params policyParams
	hash   uint64
	// bySub: the bucket is the request's subject's (by plan), not its
	// client address's. Both are the request's, passed to decide beside
	// the checks rather than copied into each.
	bySub bool
	// res is the decision. After a memory decision only res.Allowed is
	// set (lazy): result works the rest out from tat and now when a
	// response needs it.
	res  Result
	lazy bool
	tat  int64 // the bucket's TAT after the decision
	now  int64
}

// result is the check's full Result.
func (c *check) result() Result {
	if c.lazy {
		c.res = gcraResult(c.res.Allowed, c.tat, c.now, c.params)
		c.lazy = false
	}
	return c.res
}

// collect appends the buckets a request is counted in. ip is the masked
// client address, ipHash its hash (hashIP).
func (st *state) collect(cs []check, l *Limiter, r *http.Request, ip netip.Addr, ipHash uint64, id identity) []check {
	if id.plan >= 0 {
		cs = st.plan.add(cs, l, false, ip, ipHash, id)
	} else if st.ip != nil && st.cfg.Identify.Keyless == "ip" {
		cs = st.ip.add(cs, l, true, ip, ipHash, id)
	}
	for _, ru := range st.rules {
		if ru.matches(r) {
			cs = ru.pol.add(cs, l, ru.pol.byIP, ip, ipHash, id)
		}
	}
	return cs
}

// add appends the bucket of this policy for a request, if it applies;
// ipHash is the seeded hash of the masked client address.
func (p *policy) add(cs []check, l *Limiter, byIP bool, ip netip.Addr, ipHash uint64, id identity) []check {
	lp := p.limits[id.plan+1]
	if lp.interval == 0 {
		return cs
	}
	// Filled in place: a composite literal would be built on the stack
	// and copied with wide loads that span its narrower stores, which
	// stalls store forwarding (a sixth of the request on the profile).
	n := len(cs)
	if n < cap(cs) {
		cs = cs[:n+1]
		cs[n] = check{}
	} else {
		cs = append(cs, check{})
	}
	c := &cs[n]
	c.pol, c.params = p, lp
	if byIP || id.plan < 0 {
		c.hash = l.ipBucket(ipHash, p.id)
	} else {
		c.bySub = true
		c.hash = mix(maphash.String(l.seed, id.subject), p.id^0x5bd1e995)
	}
	return cs
}

func wymix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// mix combines a subject's hash with a policy id (the finaliser of
// SplitMix64), so the same subject in two policies lands in unrelated
// buckets.
func mix(h, id uint64) uint64 {
	x := h ^ id
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// clock is the instant a request is decided at, in nanoseconds: the
// monotonic clock (one read, no time.Time arithmetic, and immune to steps
// of the wall clock) counted from the wall time New ran at, or the fake
// clock's time.
func (l *Limiter) clock() int64 {
	if l.fake {
		return l.now().UnixNano()
	}
	return l.baseNs + int64(time.Since(l.base))
}

// requestClock is clock for a request the front has timed: the instant in
// info.Start, which the front read when the request head arrived (it needs
// it for the access log anyway), on the same scale as clock. Reading the
// clock again would cost a third of the limiter's own work on a VM (35-50
// ns), for an instant a few microseconds later that changes no decision:
// GCRA takes instants a little out of order across requests (a bucket's
// TAT only moves forward). Only Start's monotonic reading is used, so a
// step of the wall clock still neither fills nor drains buckets; a Start
// without one (stripped by UTC, In or Round), no Start (a handler outside
// the front), or a fake clock reads the clock instead.
func (l *Limiter) requestClock(info *reqinfo.Info) int64 {
	if l.fake || info == nil {
		return l.clock()
	}
	if timeWordsOK {
		// Start.Sub(base) on the monotonic readings alone, without the
		// Round(0) copy that tells whether Start has one.
		s, b := (*timeWords)(unsafe.Pointer(&info.Start)), (*timeWords)(unsafe.Pointer(&l.base))
		if s.wall&b.wall&hasMonotonic == 0 {
			return l.clock()
		}
		return l.baseNs + (s.ext - b.ext)
	}
	if info.Start == info.Start.Round(0) {
		return l.clock()
	}
	return l.baseNs + int64(info.Start.Sub(l.base))
}

// timeWords mirrors time.Time's layout: wall, whose top bit says whether
// ext holds a monotonic reading (nanoseconds on the runtime's monotonic
// clock), ext, and the location. requestClock reads the monotonic
// reading through it; checkTimeWords verifies the mirror at start-up
// against time's API, and if a Go release changes the layout,
// timeWordsOK is false and requestClock uses the API.
type timeWords struct {
	wall uint64
	ext  int64
	loc  unsafe.Pointer
}

const hasMonotonic = 1 << 63

var timeWordsOK = checkTimeWords()

func checkTimeWords() bool {
	if unsafe.Sizeof(time.Time{}) != unsafe.Sizeof(timeWords{}) {
		return false
	}
	words := func(t time.Time) timeWords { return *(*timeWords)(unsafe.Pointer(&t)) }
	a := time.Now()
	for _, d := range []time.Duration{0, 1, 1234567891, 90 * 24 * time.Hour, -time.Hour} {
		b := a.Add(d)
		wa, wb := words(a), words(b)
		if wa.wall&wb.wall&hasMonotonic == 0 || time.Duration(wb.ext-wa.ext) != b.Sub(a) || b.Sub(a) != d {
			return false
		}
	}
	for _, t := range []time.Time{a.Round(0), a.UTC(), time.Unix(1, 0), {}} {
		if words(t).wall&hasMonotonic != 0 {
			return false
		}
	}
	return true
}

// prefetch starts loading the memory buckets of cs, so that their cache
// misses overlap the work done before decide (the clock read at least);
// serve has started on the IP bucket already. With Redis the memory
// buckets are only a fallback.
func (st *state) prefetch(cs []check) {
	if st.redis != nil {
		return
	}
	for i := range cs {
		if cs[i].pol != st.ip {
			st.mem.prefetch(cs[i].hash)
		}
	}
}

// counting is how decide counts its decisions in the metrics.
type counting uint8

const (
	countAll      counting = iota // every bucket decision (count)
	countDryRun                   // the same, refusals as dry-run ones
	countRefusals                 // refusals only: the IP token a bad key costs
)

// decide takes a token from every check, all or none, at now (from
// clock), and counts the decisions under plan (-1: keyless) as how says.
// ip (masked) and sub are the request's client address and subject, which
// name its buckets in Redis. It returns false when the request must be
// refused (with the checks' results filled in).
func (l *Limiter) decide(ctx context.Context, st *state, cs []check, now int64, ip netip.Addr, sub string, plan int, how counting) bool {
	if len(cs) == 0 {
		return true
	}
	var ok bool
	if st.redis != nil {
		switch st.redis.take(ctx, cs, now, ip, sub) {
		case redisOK:
			ok = allAllowed(cs)
		case redisAllow:
			for i := range cs {
				cs[i].res = Result{Allowed: true, Remaining: cs[i].params.burst - 1}
			}
			ok = true
		case redisRefuse:
			for i := range cs {
				cs[i].res = Result{RetryAfter: time.Second}
			}
		case redisLocal:
			return l.decideMemory(st.mem, cs, now, plan, how)
		}
		l.tally(cs, plan, ok, how)
		return ok
	}
	return l.decideMemory(st.mem, cs, now, plan, how)
}

// decideMemory is decide on the memory store. A request counted in one
// bucket has its decision counted while takeTAT holds the shard's lock;
// with several, which bucket's decision counts is known only at the end.
func (l *Limiter) decideMemory(m *memoryStore, cs []check, now int64, plan int, how counting) bool {
	if len(cs) == 1 {
		c := &cs[0]
		var allowed, refused *stripedCounter
		if ctr := c.pol.counters; len(ctr) > plan+1 {
			if how != countRefusals {
				allowed = ctr[plan+1][resAllowed]
			}
			refused = ctr[plan+1][resLimited]
			if how == countDryRun {
				refused = ctr[plan+1][resDryRun]
			}
		}
		tat, ok := m.takeTAT(c.hash, now, c.params, allowed, refused)
		c.res, c.lazy, c.tat, c.now = Result{Allowed: ok}, true, tat, now
		return ok
	}
	ok := takeMemory(m, cs, now)
	l.tally(cs, plan, ok, how)
	return ok
}

// tally is count as decide's how says.
func (l *Limiter) tally(cs []check, plan int, ok bool, how counting) {
	if how != countRefusals || !ok {
		l.count(cs, plan, ok, how == countDryRun)
	}
}

// takeMemory is the memory store's all-or-none decision: tokens taken from
// earlier buckets are given back when a later one refuses, so a request
// refused by a burst limit does not eat into a daily quota. It counts
// nothing.
func takeMemory(m *memoryStore, cs []check, now int64) bool {
	for i := range cs {
		c := &cs[i]
		tat, ok := m.takeTAT(c.hash, now, c.params, nil, nil)
		c.res, c.lazy, c.tat, c.now = Result{Allowed: ok}, true, tat, now
		if !ok {
			for j := range i {
				m.refund(cs[j].hash, cs[j].params)
			}
			for j := i + 1; j < len(cs); j++ {
				// Not consulted; report the bucket as it stands.
				cs[j].res, cs[j].lazy = Result{Allowed: true, Remaining: -1}, false
			}
			return false
		}
	}
	return true
}

func allAllowed(cs []check) bool {
	for i := range cs {
		if !cs[i].res.Allowed {
			return false
		}
	}
	return true
}

// keyWatcher polls the keys file; polling a stat every few seconds costs
// nothing and works on every filesystem, including the bind mounts and
// ConfigMaps where inotify misses atomic renames.
type keyWatcher struct {
	stop, done chan struct{}
}

func (l *Limiter) startWatcher(st *state) {
	if st.cfg.Identify.KeysFile == "" {
		return
	}
	w := &keyWatcher{stop: make(chan struct{}), done: make(chan struct{})}
	l.watcher = w
	every := st.cfg.Identify.KeysReload.D()
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				l.checkKeys(w)
			}
		}
	}()
}

// detachWatcher tells the running watcher to stop (l.mu held) and returns
// it, for the caller to wait on once l.mu is released.
func (l *Limiter) detachWatcher() *keyWatcher {
	w := l.watcher
	if w != nil {
		close(w.stop)
		l.watcher = nil
	}
	return w
}

// wait returns once the watcher's goroutine has ended.
func (w *keyWatcher) wait() {
	if w != nil {
		<-w.done
	}
}

// checkKeys re-reads the keys file when it changed. A bad file is logged
// and the last good keys stay.
func (l *Limiter) checkKeys(w *keyWatcher) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-w.stop:
		return // a Reload or Close replaced this watcher while it waited
	default:
	}
	st := l.state.Load()
	path := st.cfg.Identify.KeysFile
	fi, err := os.Stat(path)
	if err != nil {
		l.log.Warn("keys file unreadable; keeping the last keys", "path", path, "error", err)
		return
	}
	if st.keys != nil && stampOf(fi) == st.keys.stat {
		return
	}
	ks, err := loadKeys(path, st.planIdx)
	if err != nil {
		l.log.Error("keys file rejected; keeping the last keys", "path", path, "error", err)
		return
	}
	ns := *st
	ns.keys = ks
	l.state.Store(&ns)
	l.log.Info("keys file reloaded", "path", path, "keys", len(ks.keys))
}
