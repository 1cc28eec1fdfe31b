package workers

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/conf"
)

// Config is the `app:` section. Exactly one of WSGI, Command and Upstreams
// is set; it decides the pool's kind.
type Config struct {
	// WSGI is "module:callable" (e.g. "mysite.wsgi:application"): gatehouse
	// runs Python workers with its embedded shim. Empty: not a WSGI pool.
	WSGI string `yaml:"wsgi"`
	// Command is a program serving HTTP on the address given in PORT (TCP on
	// 127.0.0.1) or GATEHOUSE_SOCKET (a Unix socket path); each worker runs
	// one copy. Empty: not a command pool.
	Command []string `yaml:"command"`
	// Upstreams are host:port addresses run by someone else; gatehouse
	// balances over them with health checks but starts nothing.
	Upstreams []string `yaml:"upstreams"`

	// Python is the interpreter that runs WSGI workers. Default "python3".
	Python string `yaml:"python"`
	// Chdir is the working directory of the workers. Default: gatehouse's own.
	Chdir string `yaml:"chdir"`
	// Env is added to the workers' environment (gatehouse's own environment
	// is inherited). Default: nothing added.
	Env map[string]string `yaml:"env"`

	// Workers is the number of worker processes. Default 4.
	Workers int `yaml:"workers"`
	// Threads is how many requests one worker is given at a time (and the
	// number of threads the WSGI shim runs). Default 1.
	Threads int `yaml:"threads"`
	// Timeout bounds the wait for a response head. Past it the client gets
	// 504 and a process worker is killed (stack dumped first) and replaced.
	// Default 30s.
	Timeout conf.Duration `yaml:"timeout"`
	// GracefulTimeout is how long a retiring worker may finish its in-flight
	// requests after SIGTERM before it is killed. Default 30s.
	GracefulTimeout conf.Duration `yaml:"graceful_timeout"`
	// MaxRequests recycles a worker after this many requests (plus up to
	// MaxRequestsJitter, drawn per worker). Default 0: never.
	MaxRequests       int `yaml:"max_requests"`
	MaxRequestsJitter int `yaml:"max_requests_jitter"`
	// MaxRSS is the soft memory limit: a worker above it for MemorySamples
	// consecutive samples is replaced (replacement first, then drained).
	// What is measured is set by Memory. Default 0: no limit.
	MaxRSS conf.Size `yaml:"max_rss"`
	// MaxRSSHard kills a worker at once when its memory passes it (its
	// in-flight requests fail). Default 0: no hard limit.
	MaxRSSHard conf.Size `yaml:"max_rss_hard"`
	// Memory names what the limits measure: "unshared" (private dirty +
	// swap from /proc/PID/smaps_rollup: what the worker alone costs; pages
	// shared with siblings are not counted), "rss" or "pss". Default "unshared".
	Memory string `yaml:"memory"`
	// MemoryInterval is how often every worker's memory is sampled. Default 2s.
	MemoryInterval conf.Duration `yaml:"memory_interval"`
	// Queue is how many requests may wait for a free worker; more get 503.
	// Default 1024.
	Queue int `yaml:"queue"`
	// QueueTimeout is how long a request may wait in the queue before it
	// gets 503. Default 30s.
	QueueTimeout conf.Duration `yaml:"queue_timeout"`
	// BootTimeout is how long a new worker has to become ready (to import
	// the app, or to accept connections) before it counts as a boot failure.
	// Default 60s.
	BootTimeout conf.Duration `yaml:"boot_timeout"`

	// ResponseBuffer is the largest response (by Content-Length) that is
	// read off the backend into memory as soon as its head arrives,
	// freeing the worker before a slow client has read it. Larger ones of
	// known length go through an unlinked temp file instead; responses of
	// unknown length (streams) pass through. Default 256KiB.
	ResponseBuffer conf.Size `yaml:"response_buffer"`

	// UpstreamConcurrency bounds the requests sent to one upstream at a time
	// (the rest wait in the queue). Default 0: unbounded.
	UpstreamConcurrency int `yaml:"upstream_concurrency"`
	// HealthCheck is the optional active check of upstreams.
	HealthCheck HealthCheck `yaml:"health_check"`
}

// HealthCheck configures the active health check of upstreams. Passive
// checks (a refused connection takes an upstream out) are always on.
type HealthCheck struct {
	// Path is requested with GET on every upstream; a 2xx or 3xx answer is
	// healthy. Default "": no active check.
	Path string `yaml:"path"`
	// Interval between checks. Default 5s.
	Interval conf.Duration `yaml:"interval"`
	// Timeout of one check. Default 2s.
	Timeout conf.Duration `yaml:"timeout"`
}

// Kind is what a pool runs.
type Kind string

const (
	KindWSGI     Kind = "wsgi"
	KindCommand  Kind = "command"
	KindUpstream Kind = "upstreams"
)

// Kind reports which of wsgi, command and upstreams is set ("" when none).
func (c *Config) Kind() Kind {
	switch {
	case c.WSGI != "":
		return KindWSGI
	case len(c.Command) > 0:
		return KindCommand
	case len(c.Upstreams) > 0:
		return KindUpstream
	}
	return ""
}

// Defaults fills zero fields with their documented defaults.
func (c *Config) Defaults() {
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setDur := func(p *conf.Duration, v time.Duration) {
		if *p == 0 {
			*p = conf.Duration(v)
		}
	}
	if c.ResponseBuffer == 0 {
		c.ResponseBuffer = 256 << 10
	}
	if c.Python == "" {
		c.Python = "python3"
	}
	if c.Memory == "" {
		c.Memory = "unshared"
	}
	setInt(&c.Workers, 4)
	setInt(&c.Threads, 1)
	setInt(&c.Queue, 1024)
	setDur(&c.Timeout, 30*time.Second)
	setDur(&c.GracefulTimeout, 30*time.Second)
	setDur(&c.QueueTimeout, 30*time.Second)
	setDur(&c.BootTimeout, 60*time.Second)
	setDur(&c.MemoryInterval, 2*time.Second)
	setDur(&c.HealthCheck.Interval, 5*time.Second)
	setDur(&c.HealthCheck.Timeout, 2*time.Second)
}

// Validate reports every problem, with paths relative to the app section.
func (c *Config) Validate() error {
	var errs conf.Errors
	n := 0
	for _, set := range []bool{c.WSGI != "", len(c.Command) > 0, len(c.Upstreams) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		errs.Add("", "set exactly one of wsgi, command and upstreams (found %d)", n)
	}
	if c.WSGI != "" {
		mod, fn, ok := strings.Cut(c.WSGI, ":")
		if !ok || !pyDotted(mod) || !pyDotted(fn) {
			errs.Add("wsgi", "want module:callable such as mysite.wsgi:application, got %q", c.WSGI)
		}
	}
	for i, u := range c.Upstreams {
		host, port, err := net.SplitHostPort(u)
		if err != nil || host == "" || port == "" {
			errs.Add(fmt.Sprintf("upstreams[%d]", i), "want host:port such as 127.0.0.1:8000, got %q", u)
		}
	}
	if c.Workers < 1 {
		errs.Add("workers", "must be at least 1")
	}
	if c.Threads < 1 {
		errs.Add("threads", "must be at least 1")
	}
	if c.Queue < 0 {
		errs.Add("queue", "must not be negative")
	}
	if c.MaxRequests < 0 {
		errs.Add("max_requests", "must not be negative")
	}
	if c.MaxRequestsJitter < 0 {
		errs.Add("max_requests_jitter", "must not be negative")
	}
	if c.UpstreamConcurrency < 0 {
		errs.Add("upstream_concurrency", "must not be negative")
	}
	switch c.Memory {
	case "unshared", "rss", "pss":
	default:
		errs.Add("memory", "want unshared, rss or pss, got %q", c.Memory)
	}
	if c.MaxRSSHard > 0 && c.MaxRSS > 0 && c.MaxRSSHard < c.MaxRSS {
		errs.Add("max_rss_hard", "must be above max_rss (%s)", c.MaxRSS)
	}
	if c.HealthCheck.Path != "" && !strings.HasPrefix(c.HealthCheck.Path, "/") {
		errs.Add("health_check.path", "must start with /")
	}
	for k := range c.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			errs.Add("env."+k, "is not a valid environment variable name")
		}
	}
	return errs.Err()
}

func pyDotted(s string) bool {
	if s == "" {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" {
			return false
		}
		for i, r := range part {
			if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9' || r > 127 {
				continue
			}
			return false
		}
	}
	return true
}
