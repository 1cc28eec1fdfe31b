package proxy

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/ascii"
	"github.com/gatehouse/gatehouse/internal/conf"
	"go.yaml.in/yaml/v3"
)

// Config is the `server:` section: listeners, limits, trust and headers of
// the HTTP front. Zero fields take the defaults written beside them.
type Config struct {
	// Listen is where plain HTTP is served: "host:port", ":port", or a Unix
	// socket path (starting with "/" or "./", or written "unix:PATH"). A
	// list serves several. Default ":8080".
	Listen Addrs `yaml:"listen"`
	// ListenTLS is where HTTPS is served. Empty means no HTTPS.
	ListenTLS Addrs `yaml:"listen_tls"`
	// Hosts are the Host values the front answers (like Django's
	// ALLOWED_HOSTS): "example.com", "*.example.com" (subdomains only),
	// ".example.com" (the domain and its subdomains), "*" (any). Empty means
	// any. Others get 421 and never reach the app.
	Hosts []string `yaml:"hosts"`
	// TrustedProxies are the peers (CIDRs or addresses, or the words
	// "loopback", "private" and "unix") whose X-Forwarded-For,
	// X-Forwarded-Proto and X-Request-ID are believed. Default none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ReadHeaderTimeout bounds reading a request head. Default 10s.
	ReadHeaderTimeout conf.Duration `yaml:"read_header_timeout"`
	// BodyTimeout bounds the wait between two reads of a request body, like
	// nginx's client_body_timeout; a client that stalls longer gets 408.
	// Default 60s.
	BodyTimeout conf.Duration `yaml:"body_timeout"`
	// SendTimeout bounds the wait between two writes of a response to the
	// client, like nginx's send_timeout. Default 60s.
	SendTimeout conf.Duration `yaml:"send_timeout"`
	// IdleTimeout is how long a client keep-alive connection may sit idle.
	// Default 75s.
	IdleTimeout conf.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line plus header fields; larger
	// heads get 431. Default 32KiB.
	MaxHeaderBytes conf.Size `yaml:"max_header_bytes"`
	// MaxURIBytes bounds the request line; longer gets 414. Default 8KiB.
	MaxURIBytes conf.Size `yaml:"max_uri_bytes"`
	// MaxBodyBytes bounds a request body; larger gets 413. Default 100MiB.
	MaxBodyBytes conf.Size `yaml:"max_body_bytes"`
	// BodyBufferBytes is how much of a request body is held in memory while
	// it is read from the client; the rest spills to a temporary file in
	// TempDir. The app only sees the request once the whole body is in, so
	// a slow client never holds a worker. Default 1MiB.
	BodyBufferBytes conf.Size `yaml:"body_buffer_bytes"`
	// TempDir holds spilled request bodies. Default: the system temp dir.
	TempDir string `yaml:"temp_dir"`
	// ShutdownTimeout is how long SIGTERM waits for in-flight requests.
	// Default 30s.
	ShutdownTimeout conf.Duration `yaml:"shutdown_timeout"`
	// Headers are added to every response that does not already carry
	// them. An empty value removes the header (e.g. `Server: ""`).
	// Safe defaults (X-Content-Type-Options, Referrer-Policy,
	// X-Frame-Options) apply unless named here.
	Headers map[string]string `yaml:"headers"`
}

// Defaults fills zero fields with their documented defaults.
func (c *Config) Defaults() {
	if len(c.Listen) == 0 {
		c.Listen = Addrs{":8080"}
	}
	setDur(&c.ReadHeaderTimeout, 10*time.Second)
	setDur(&c.BodyTimeout, 60*time.Second)
	setDur(&c.SendTimeout, 60*time.Second)
	setDur(&c.IdleTimeout, 75*time.Second)
	setDur(&c.ShutdownTimeout, 30*time.Second)
	setSize(&c.MaxHeaderBytes, 32<<10)
	setSize(&c.MaxURIBytes, 8<<10)
	setSize(&c.MaxBodyBytes, 100<<20)
	setSize(&c.BodyBufferBytes, 1<<20)
	// Never buffer more in memory than a body may be.
	c.BodyBufferBytes = min(c.BodyBufferBytes, c.MaxBodyBytes)
}

func setDur(d *conf.Duration, v time.Duration) {
	if *d == 0 {
		*d = conf.Duration(v)
	}
}

func setSize(s *conf.Size, v int64) {
	if *s == 0 {
		*s = conf.Size(v)
	}
}

// Validate reports every problem, with paths relative to `server`.
func (c *Config) Validate() error {
	var errs conf.Errors
	for i, a := range c.Listen {
		if err := validateAddr(a); err != "" {
			errs.Add(indexed("listen", i, len(c.Listen)), "%s", err)
		}
	}
	for i, a := range c.ListenTLS {
		if err := validateAddr(a); err != "" {
			errs.Add(indexed("listen_tls", i, len(c.ListenTLS)), "%s", err)
		}
	}
	for i, h := range c.Hosts {
		if _, ok := parseHostPattern(h); !ok {
			errs.Add(indexed("hosts", i, 2), "%q is not a host name: write example.com, .example.com, *.example.com or *", h)
		}
	}
	if _, err := parseTrusted(c.TrustedProxies); err != nil {
		errs.AddErr("trusted_proxies", err)
	}
	if c.MaxHeaderBytes < 1<<10 || c.MaxHeaderBytes > 1<<20 {
		errs.Add("max_header_bytes", "must be between 1KiB and 1MiB, got %s", c.MaxHeaderBytes)
	}
	if c.MaxURIBytes < 256 || c.MaxURIBytes > c.MaxHeaderBytes {
		errs.Add("max_uri_bytes", "must be between 256B and max_header_bytes (%s), got %s", c.MaxHeaderBytes, c.MaxURIBytes)
	}
	for name := range c.Headers {
		if !ascii.IsToken(name) {
			errs.Add("headers."+name, "is not a valid header name")
		}
	}
	for name, v := range c.Headers {
		if strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			errs.Add("headers."+name, "value has control characters")
		}
	}
	return errs.Err()
}

func indexed(key string, i, n int) string {
	if n <= 1 {
		return key
	}
	return key + "[" + strconv.Itoa(i) + "]"
}

// Addrs is one listen address or a list of them.
type Addrs []string

// UnmarshalConf accepts a single string or a list.
func (a *Addrs) UnmarshalConf(n *yaml.Node, path string, errs *conf.Errors) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "" {
			*a = nil
			return
		}
		*a = Addrs{n.Value}
	case yaml.SequenceNode:
		var out Addrs
		for i, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				*errs = append(*errs, &conf.Error{Path: path + "[" + strconv.Itoa(i) + "]", Line: c.Line, Msg: "want an address such as :8080"})
				continue
			}
			out = append(out, c.Value)
		}
		*a = out
	default:
		*errs = append(*errs, &conf.Error{Path: path, Line: n.Line, Msg: "want an address such as \":8080\" or a list of them"})
	}
}

// unixPath returns the socket path when addr names a Unix socket.
func unixPath(addr string) (string, bool) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		return p, true
	}
	if strings.HasPrefix(addr, "/") || strings.HasPrefix(addr, "./") {
		return addr, true
	}
	return "", false
}

func validateAddr(a string) string {
	if p, ok := unixPath(a); ok {
		if p == "" {
			return "unix: needs a socket path"
		}
		return ""
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "\"" + a + "\" is not host:port (write \":8080\", \"127.0.0.1:8080\", \"[::1]:8080\" or a Unix socket path)"
	}
	// Syntax only: a name is resolved when the listener opens, not while
	// validating (validate runs on build machines without DNS).
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil && !validHostName(strings.ToLower(host)) {
			return "host \"" + host + "\" is not an address or a host name"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "port \"" + port + "\" is not a port number (0-65535)"
	}
	return ""
}

// AdminConfig is the `admin:` section. Without it there is no admin
// listener.
type AdminConfig struct {
	// Listen is the admin address (/healthz, /readyz, /status, /metrics).
	// Default 127.0.0.1:9180. It has no authentication: keep it on
	// loopback or a private network.
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiler under /debug/pprof/ on the admin
	// listener, for diagnosing CPU or memory use. Default false.
	Pprof bool `yaml:"pprof"`
}

// Defaults fills zero fields.
func (c *AdminConfig) Defaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9180"
	}
}

// Validate reports problems relative to `admin`.
func (c *AdminConfig) Validate() error {
	if err := validateAddr(c.Listen); err != "" {
		return conf.Errorf("listen", "%s", err)
	}
	return nil
}
