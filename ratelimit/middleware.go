package ratelimit

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/gatehouse/gatehouse/internal/reqinfo"
)

// Wrap returns next behind the limiter. It answers 401 for an unknown API
// key or a bad token and 429 for a request over a limit (or over the
// per-IP concurrency cap) itself; next sees only admitted requests. It
// sets reqinfo's Plan (and Reason when it answers).
func (l *Limiter) Wrap(next http.Handler) http.Handler {
	return &wrapped{l, next}
}

// wrapped is Wrap's handler: a type whose ServeHTTP is the limiter's
// work, where a HandlerFunc closure calling it would add two calls to
// every request.
type wrapped struct {
	l    *Limiter
	next http.Handler
}

// maxChecks is how many buckets a request is counted in without an
// allocation (the base limit and up to seven rules).
const maxChecks = 8

// smallChecks is the buffer for configurations with at most one rule.
const smallChecks = 2

func (h *wrapped) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l, next := h.l, h.next
	st := l.state.Load()
	info := reqinfo.From(r.Context())
	var ip netip.Addr
	if info != nil {
		ip = info.ClientIP
	} else if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		ip = ap.Addr()
	}
	ip = st.maskIP(ip)
	ipHash := l.hashIP(ip)
	// Most requests are counted in their IP bucket: start loading it
	// before anything else (see prefetch).
	if st.ip != nil && st.redis == nil {
		prefetch(st.mem.homeAddr(l.ipBucket(ipHash, st.ip.id))) // st.mem.prefetch, inlined
	}

	id, err := st.identify(r)
	if err == nil && id.plan < 0 && st.cfg.Identify.Keyless == "refuse" {
		err = &errAuth{"an API key or token is required"}
	}
	if err != nil {
		// A bad key still costs its sender a token from the IP limit, so
		// that guessing keys is as slow as any other abuse.
		if st.ip != nil && !st.cfg.DryRun {
			var buf [1]check
			cs := st.ip.add(buf[:0], l, true, ip, ipHash, identity{plan: -1})
			if !l.decide(r.Context(), st, cs, l.requestClock(info), ip, "", -1, countRefusals) {
				if info != nil {
					info.Reason = "rate_limited"
				}
				l.refuse(w, r, info, http.StatusTooManyRequests, "too many requests", cs[0].result().RetryAfter, false)
				return
			}
		}
		l.metrics.unauthorized.Inc()
		if info != nil {
			info.Reason = "unauthorized"
		}
		l.refuse(w, r, info, http.StatusUnauthorized, err.Error(), 0, st.jwt != nil)
		return
	}
	if info != nil && id.plan >= 0 {
		info.Plan = st.plans[id.plan]
	}

	// The buckets first, so that their cache lines load while the
	// concurrency cap and the clock are read. Most configurations count a
	// request in one or two buckets: a buffer that fits them is all that
	// is zeroed for each request.
	var cs []check
	if len(st.rules) < smallChecks {
		var buf [smallChecks]check
		cs = buf[:0]
	} else {
		var buf [maxChecks]check
		cs = buf[:0]
	}
	cs = st.collect(cs, l, r, ip, ipHash, id)
	st.prefetch(cs)

	if limit := st.cfg.MaxConcurrentPerIP; limit > 0 {
		if !l.conc.acquire(ip, limit) {
			l.metrics.concurrency.Inc()
			if !st.cfg.DryRun {
				if info != nil {
					info.Reason = "too_many_concurrent"
				}
				l.refuse(w, r, info, http.StatusTooManyRequests, "too many concurrent requests from this address", time.Second, false)
				return
			}
			l.logDryRun(r, info, "concurrency", "")
		} else {
			defer l.conc.release(ip)
		}
	}

	how := countAll
	if st.cfg.DryRun {
		how = countDryRun
	}
	var ok bool
	if st.redis == nil && len(cs) > 0 {
		ok = l.decideMemory(st.mem, cs, l.requestClock(info), id.plan, how) // decide, one call less
	} else {
		ok = l.decide(r.Context(), st, cs, l.requestClock(info), ip, id.subject, id.plan, how)
	}
	if !ok && st.cfg.DryRun {
		l.logDryRun(r, info, limitingPolicy(cs), planName(st, id.plan))
		ok = true
	}
	if !ok {
		var retry time.Duration
		for i := range cs {
			if !cs[i].res.Allowed {
				retry = max(retry, cs[i].result().RetryAfter)
			}
		}
		if info != nil {
			info.Reason = "rate_limited"
		}
		if st.cfg.Headers != "never" {
			setHeaders(w.Header(), cs, id.plan)
		}
		l.refuse(w, r, info, http.StatusTooManyRequests, "too many requests", retry, false)
		return
	}
	if st.cfg.Headers == "always" && len(cs) > 0 {
		setHeaders(w.Header(), cs, id.plan)
	}
	next.ServeHTTP(w, r)
}

func planName(st *state, plan int) string {
	if plan < 0 {
		return ""
	}
	return st.plans[plan]
}

func limitingPolicy(cs []check) string {
	for i := range cs {
		if !cs[i].res.Allowed {
			return cs[i].pol.name
		}
	}
	return ""
}

// count records each bucket's decision under its policy and the plan.
func (l *Limiter) count(cs []check, plan int, ok, dry bool) {
	for i := range cs {
		c := &cs[i]
		res := resAllowed
		switch {
		case !c.res.Allowed && dry:
			res = resDryRun
		case !c.res.Allowed:
			res = resLimited
		case !ok:
			continue // not consulted or given back: not a decision
		}
		if ctr := c.pol.counters; len(ctr) > plan+1 && ctr[plan+1][res] != nil {
			ctr[plan+1][res].inc(c.hash)
		}
	}
}

// logDryRun logs a refusal that dry-run let through, at most once a second
// so that a flood cannot turn into a flood of log lines; the metrics count
// every one.
func (l *Limiter) logDryRun(r *http.Request, info *reqinfo.Info, policy, plan string) {
	sec := l.now().Unix()
	last := l.dryRunLogged.Load()
	if last == sec || !l.dryRunLogged.CompareAndSwap(last, sec) {
		return
	}
	id, ip := "", ""
	if info != nil {
		id, ip = info.ID, info.ClientIP.String()
	}
	l.log.Info("dry run: request would be rate limited", "request_id", id, "remote_addr", ip,
		"method", r.Method, "policy", policy, "plan", plan)
}

// setHeaders writes RateLimit-Policy and RateLimit
// (draft-ietf-httpapi-ratelimit-headers): every policy the request was
// counted in, and its remaining quota r and seconds t until it is full
// again (until the next token when none remains).
func setHeaders(h http.Header, cs []check, plan int) {
	if len(cs) == 1 {
		// The common case: the precomputed policy value, no allocation.
		h["Ratelimit-Policy"] = cs[0].pol.policyValue[plan+1]
	} else {
		var b strings.Builder
		for i := range cs {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(cs[i].pol.policyHeader[plan+1])
		}
		h["Ratelimit-Policy"] = []string{b.String()}
	}
	// The RateLimit value and the slice holding it share one allocation.
	hv := new(headerValue)
	b := hv.buf[:0]
	for i := range cs {
		c := &cs[i]
		res := c.result()
		if res.Remaining < 0 {
			continue
		}
		if len(b) > 0 {
			b = append(b, ", "...)
		}
		b = append(b, c.pol.headerName[plan+1]...)
		b = append(b, ";r="...)
		b = strconv.AppendInt(b, res.Remaining, 10)
		b = append(b, ";t="...)
		t := res.Reset
		if res.Remaining == 0 {
			t = max(res.RetryAfter, 0)
			if res.Allowed {
				t = time.Duration(c.params.interval)
			}
		}
		b = strconv.AppendInt(b, ceilSeconds(t), 10)
	}
	if len(b) <= len(hv.buf) {
		// b is hv.buf, written once and never again: a string may alias it.
		hv.s[0] = unsafe.String(unsafe.SliceData(b), len(b))
	} else {
		hv.s[0] = string(b)
	}
	h["Ratelimit"] = hv.s[:1:1]
}

// headerValue is one header value and its backing bytes in one object.
type headerValue struct {
	s   [1]string
	buf [80]byte
}

func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// refuse answers 401 or 429 with a body the client can read: JSON when it
// accepts JSON, plain text otherwise. The body never carries internal
// detail, only what the client did wrong and the request id.
func (l *Limiter) refuse(w http.ResponseWriter, r *http.Request, info *reqinfo.Info, status int, msg string, retry time.Duration, bearerAuth bool) {
	h := w.Header()
	if status == http.StatusTooManyRequests {
		h.Set("Retry-After", strconv.FormatInt(max(ceilSeconds(retry), 1), 10))
	}
	if status == http.StatusUnauthorized && bearerAuth {
		// RFC 6750 section 3.
		h.Set("Www-Authenticate", `Bearer error="invalid_token", error_description=`+strconv.Quote(msg))
	}
	reqID := ""
	if info != nil {
		reqID = info.ID
	}
	h.Set("Cache-Control", "no-store")
	if wantsJSON(r.Header.Get("Accept")) {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(status)
		body := `{"error":` + jsonString(msg) + `,"status":` + strconv.Itoa(status)
		if status == http.StatusTooManyRequests {
			body += `,"retry_after":` + strconv.FormatInt(max(ceilSeconds(retry), 1), 10)
		}
		if reqID != "" {
			body += `,"request_id":` + jsonString(reqID)
		}
		w.Write([]byte(body + "}\n"))
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	body := strconv.Itoa(status) + " " + http.StatusText(status) + ": " + msg
	if reqID != "" {
		body += " (request id " + reqID + ")"
	}
	w.Write([]byte(body + "\n"))
}

// wantsJSON reports whether an Accept header names a JSON type
// (application/json, application/problem+json, any +json). It does not
// weigh q-values: a client that names JSON at all can read it.
func wantsJSON(accept string) bool {
	return strings.Contains(accept, "json")
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Prefetch starts loading the memory bucket that a request from ip is
// counted in under the IP limit, and returns at once. The front calls it
// as soon as it has resolved the client address, before its own work on
// the request (request id, header checks, host check, routing): with a
// million clients the bucket is a miss to memory (115-155 ns on the
// development VM), which then overlaps that work instead of stalling the
// limiter, and Wrap's handler finds the line in the cache. Calling it is
// optional and changes no decision; with Redis, or without an IP limit,
// it does nothing.
func (l *Limiter) Prefetch(ip netip.Addr) {
	st := l.state.Load()
	if st.ip == nil || st.redis != nil {
		return
	}
	st.mem.prefetch(l.ipBucket(l.hashIP(st.maskIP(ip)), st.ip.id))
}
