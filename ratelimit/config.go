package ratelimit

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/conf"
)

// Config is the `ratelimit:` section. The zero value, after Defaults, is a
// memory store with no limits at all: every limit must be written down.
type Config struct {
	// Store is "memory" (default) or a Redis URL such as
	// redis://host:6379/0 (rediss:// for TLS, redis://:password@host/0 for
	// AUTH) when several gatehouse instances share one limit.
	Store string `yaml:"store"`
	// MaxKeys caps the buckets the memory store (and the local fallback of
	// the Redis store) keeps. When full, idle buckets (full again, the same
	// as no bucket) go first, then the least recently used. Default
	// 1,000,000 (about 34 MB); at least 1024.
	MaxKeys int `yaml:"max_keys"`
	// IP is the limit for a request that names no plan, keyed by the client
	// IP (IPv6 grouped by IPv6Prefix). Zero rate: no such limit.
	IP Limit `yaml:"ip"`
	// IPv4Prefix groups IPv4 clients by this many leading bits (default 32:
	// each address alone).
	IPv4Prefix int `yaml:"ipv4_prefix"`
	// IPv6Prefix groups IPv6 clients by this many leading bits (default 64),
	// so that one host, which usually owns a whole /64, cannot dodge its
	// limit by rotating addresses.
	IPv6Prefix int `yaml:"ipv6_prefix"`
	// MaxConcurrentPerIP caps the requests one client IP (grouped as above)
	// may have in flight at once, for clients that hold many slow requests
	// open. A request beyond it gets 429. Counted per gatehouse instance,
	// also with the Redis store. Default 0: no cap.
	MaxConcurrentPerIP int `yaml:"max_concurrent_per_ip"`
	// Identify says how a request names its plan. Without it every request
	// is keyless.
	Identify Identify `yaml:"identify"`
	// Plans maps a plan name to its limit, keyed by the subject of the API
	// key or token. A request that names a plan gets its plan's limit
	// instead of the IP limit.
	Plans map[string]Limit `yaml:"plans"`
	// Rules are extra limits by path prefix and method; every rule that
	// matches a request applies, in addition to the IP or plan limit.
	Rules []Rule `yaml:"rules"`
	// Static applies the limits to static mounts too. Default false:
	// static files cost no worker, and a page load fetches dozens of them.
	// The front reads this to decide where it applies Wrap.
	Static bool `yaml:"static"`
	// DryRun computes every decision, logs and counts the requests that
	// would be refused, and lets them through. Default false. It covers
	// rates and the concurrency cap, not identification: an unknown key or
	// a bad token still gets 401.
	DryRun bool `yaml:"dry_run"`
	// Headers says on which responses the RateLimit-Policy and RateLimit
	// fields appear: "always" (default), "limited" (429 only) or "never".
	Headers string `yaml:"headers"`
	// Redis tunes the Redis store; ignored for the memory store.
	Redis RedisConfig `yaml:"redis"`
}

// Limit is a token bucket: Rate tokens per period refill a bucket that
// holds Burst tokens; each request takes one. A new bucket starts full.
// nginx's `limit_req rate=R burst=B nodelay` is {rate: R, burst: B+1}.
type Limit struct {
	// Rate is the steady rate, such as 20/s or 100/h. Zero: no limit.
	Rate conf.Rate `yaml:"rate"`
	// Burst is how many requests may arrive at once after a quiet spell.
	// Default 1 when a rate is set (then requests must be spaced 1/rate
	// apart, like nginx's limit_req without burst).
	Burst int `yaml:"burst"`
}

// Identify says where a request's API key or token is read.
type Identify struct {
	// Header carries an API key (e.g. X-API-Key). Empty: not read.
	Header string `yaml:"header"`
	// Query is a query parameter that carries an API key (e.g. api_key).
	// Empty: not read. Keys in URLs end up in logs; prefer the header.
	Query string `yaml:"query"`
	// KeysFile is a YAML map of API keys: "<key>": {plan: pro, subject: bob}.
	// It is re-read when it changes (checked every KeysReload) and on
	// reload. A key without subject is counted under a digest of the key.
	KeysFile string `yaml:"keys_file"`
	// KeysReload is how often KeysFile is checked for changes. Default 2s.
	KeysReload conf.Duration `yaml:"keys_reload"`
	// JWT verifies a bearer token from the Authorization header. Off
	// unless a secret or public key file is set.
	JWT JWTConfig `yaml:"jwt"`
	// Keyless says what a request that names no plan gets: "ip" (default,
	// the IP limit, each client its own bucket), "allow" (no limit beyond
	// the rules) or "refuse" (401). Keyless clients never share one bucket.
	Keyless string `yaml:"keyless"`
}

// JWTConfig verifies bearer tokens with golang-jwt.
type JWTConfig struct {
	// Secret is the HMAC key for HS256 (write "${JWT_SECRET}"). Empty: no
	// HMAC tokens are accepted.
	Secret string `yaml:"secret"`
	// PublicKeyFile is a PEM file holding an RSA or ECDSA (P-256) public
	// key for RS256 or ES256. Empty: none.
	PublicKeyFile string `yaml:"public_key_file"`
	// Algorithms are the accepted "alg" values. Default: HS256 when a
	// secret is set, plus RS256 or ES256 after the public key's type. "none"
	// is never accepted, and each algorithm only verifies with its own kind
	// of key, so an HS256 token signed with the public key is refused.
	Algorithms []string `yaml:"algorithms"`
	// PlanClaim is the claim that names the plan. Default "plan".
	PlanClaim string `yaml:"plan_claim"`
	// SubjectClaim is the claim whose value keys the bucket. Default "sub".
	SubjectClaim string `yaml:"subject_claim"`
	// Issuer, when set, must equal the token's "iss".
	Issuer string `yaml:"issuer"`
	// Audience, when set, must be among the token's "aud".
	Audience string `yaml:"audience"`
	// Leeway is the clock skew allowed on exp and nbf. Default 0.
	Leeway conf.Duration `yaml:"leeway"`
}

// Rule is an extra limit on requests whose path starts with Path (and
// whose method is in Methods, when given).
type Rule struct {
	// Name labels the rule in metrics and headers. Default: the path and
	// methods, e.g. "POST /login".
	Name string `yaml:"name"`
	// Path is the URL path prefix the rule covers ("/login" also covers
	// "/login/"). Required.
	Path string `yaml:"path"`
	// Methods limits the rule to these methods. Empty: all.
	Methods []string `yaml:"methods"`
	// By keys the rule's buckets: "ip" (default) or "plan" (the subject of
	// the key or token; a keyless request is keyed by its IP).
	By string `yaml:"by"`
	// Rate and Burst are the rule's bucket (see Limit). Required unless
	// Plans gives a limit per plan.
	Rate  conf.Rate `yaml:"rate"`
	Burst int       `yaml:"burst"`
	// Plans overrides Rate and Burst for requests of a named plan (by: plan
	// only), e.g. a higher login rate for enterprise.
	Plans map[string]Limit `yaml:"plans"`
}

// RedisConfig tunes the Redis store.
type RedisConfig struct {
	// Prefix starts every Redis key gatehouse writes. Default "gatehouse:rl:".
	Prefix string `yaml:"prefix"`
	// Timeout bounds one round trip (dial, write, read). Default 100ms: a
	// decision that takes longer falls back rather than delay the request.
	Timeout conf.Duration `yaml:"timeout"`
	// OnError says what happens while Redis is unreachable: "local"
	// (default: each instance limits with its own memory buckets), "allow"
	// (no limits) or "refuse" (429 to everyone).
	OnError string `yaml:"on_error"`
	// RetryAfter is how long Redis is left alone after an error before one
	// request tries it again. Default 1s.
	RetryAfter conf.Duration `yaml:"retry_after"`
}

// Defaults fills zero fields with their documented defaults.
func (c *Config) Defaults() {
	if c.Store == "" {
		c.Store = "memory"
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = 1_000_000
	}
	if c.IPv4Prefix == 0 {
		c.IPv4Prefix = 32
	}
	if c.IPv6Prefix == 0 {
		c.IPv6Prefix = 64
	}
	if c.Headers == "" {
		c.Headers = "always"
	}
	c.IP.defaults()
	for k, p := range c.Plans {
		p.defaults()
		c.Plans[k] = p
	}
	id := &c.Identify
	if id.KeysReload == 0 {
		id.KeysReload = conf.Duration(2 * time.Second)
	}
	if id.Keyless == "" {
		id.Keyless = "ip"
	}
	if id.JWT.PlanClaim == "" {
		id.JWT.PlanClaim = "plan"
	}
	if id.JWT.SubjectClaim == "" {
		id.JWT.SubjectClaim = "sub"
	}
	for i := range c.Rules {
		r := &c.Rules[i]
		if r.By == "" {
			r.By = "ip"
		}
		if r.Burst == 0 && !r.Rate.IsZero() {
			r.Burst = 1
		}
		for k, p := range r.Plans {
			p.defaults()
			r.Plans[k] = p
		}
		for j, m := range r.Methods {
			r.Methods[j] = strings.ToUpper(m)
		}
		if r.Name == "" {
			r.Name = strings.TrimSpace(strings.Join(r.Methods, ",") + " " + r.Path)
		}
	}
	if c.Redis.Prefix == "" {
		c.Redis.Prefix = "gatehouse:rl:"
	}
	if c.Redis.Timeout == 0 {
		c.Redis.Timeout = conf.Duration(100 * time.Millisecond)
	}
	if c.Redis.OnError == "" {
		c.Redis.OnError = "local"
	}
	if c.Redis.RetryAfter == 0 {
		c.Redis.RetryAfter = conf.Duration(time.Second)
	}
}

func (l *Limit) defaults() {
	if l.Burst == 0 && !l.Rate.IsZero() {
		l.Burst = 1
	}
}

// maxSpan bounds burst × interval so that bucket arithmetic in nanoseconds
// never overflows: about 146 years.
const maxSpan = time.Duration(1 << 62)

func (l Limit) validate(path string, errs *conf.Errors) {
	if l.Rate.IsZero() {
		if l.Burst != 0 {
			errs.Add(conf.Join(path, "burst"), "is set but rate is not")
		}
		return
	}
	if l.Rate.N <= 0 {
		errs.Add(conf.Join(path, "rate"), "must be more than 0 (leave rate out for no limit)")
		return
	}
	if l.Burst < 1 {
		errs.Add(conf.Join(path, "burst"), "must be at least 1")
		return
	}
	iv := interval(l.Rate)
	if iv <= 0 {
		errs.Add(conf.Join(path, "rate"), "%s is too fast: at most 1e9/s", l.Rate)
	} else if time.Duration(l.Burst) > maxSpan/iv {
		errs.Add(conf.Join(path, "burst"), "%d at %s spans more than a century; lower it", l.Burst, l.Rate)
	}
}

// Validate reports every problem, with paths relative to `ratelimit`.
func (c *Config) Validate() error {
	var errs conf.Errors
	if c.Store != "memory" {
		u, err := url.Parse(c.Store)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			errs.Add("store", "want memory or a URL such as redis://host:6379/0, got %q", c.Store)
		}
	}
	if c.MaxKeys < 1024 {
		errs.Add("max_keys", "must be at least 1024")
	}
	c.IP.validate("ip", &errs)
	if c.IPv4Prefix < 1 || c.IPv4Prefix > 32 {
		errs.Add("ipv4_prefix", "must be between 1 and 32")
	}
	if c.IPv6Prefix < 1 || c.IPv6Prefix > 128 {
		errs.Add("ipv6_prefix", "must be between 1 and 128")
	}
	if c.MaxConcurrentPerIP < 0 {
		errs.Add("max_concurrent_per_ip", "must be 0 (no cap) or more")
	}
	switch c.Headers {
	case "always", "limited", "never":
	default:
		errs.Add("headers", "want always, limited or never, got %q", c.Headers)
	}
	for name, p := range c.Plans {
		if name == "" || strings.ContainsAny(name, "\"\\") {
			errs.Add(conf.Join("plans", name), "a plan name must be non-empty and hold no quotes")
		}
		p.validate(conf.Join("plans", name), &errs)
	}
	id := c.Identify
	switch id.Keyless {
	case "ip", "allow", "refuse":
	default:
		errs.Add("identify.keyless", "want ip, allow or refuse, got %q", id.Keyless)
	}
	if id.KeysFile != "" && id.Header == "" && id.Query == "" {
		errs.Add("identify.keys_file", "is set but neither identify.header nor identify.query says where a key is read")
	}
	if (id.Header != "" || id.Query != "") && id.KeysFile == "" {
		errs.Add("identify.keys_file", "is required to look up the keys in identify.header or identify.query")
	}
	if id.KeysFile != "" {
		if _, err := os.Stat(id.KeysFile); err != nil {
			errs.Add("identify.keys_file", "%v", err)
		}
	}
	if id.KeysReload.D() < 10*time.Millisecond {
		errs.Add("identify.keys_reload", "must be at least 10ms")
	}
	if (id.Header != "" || id.Query != "" || id.JWT.enabled()) && len(c.Plans) == 0 {
		errs.Add("plans", "identify names plans but none is defined")
	}
	if err := id.JWT.validate(); err != nil {
		errs.AddErr("identify.jwt", err)
	}
	for i, r := range c.Rules {
		p := fmt.Sprintf("rules[%d]", i)
		if !strings.HasPrefix(r.Path, "/") {
			errs.Add(conf.Join(p, "path"), "must start with /, got %q", r.Path)
		}
		if strings.ContainsAny(r.Name, "\"\\") {
			errs.Add(conf.Join(p, "name"), "must hold no quotes")
		}
		switch r.By {
		case "ip":
			if len(r.Plans) > 0 {
				errs.Add(conf.Join(p, "plans"), "only applies with by: plan")
			}
		case "plan":
		default:
			errs.Add(conf.Join(p, "by"), "want ip or plan, got %q", r.By)
		}
		if r.Rate.IsZero() && len(r.Plans) == 0 {
			errs.Add(conf.Join(p, "rate"), "is required (or plans, for by: plan)")
		}
		Limit{r.Rate, r.Burst}.validate(p, &errs)
		for name, pl := range r.Plans {
			if _, ok := c.Plans[name]; !ok {
				errs.Add(conf.Join(p, "plans."+name), "names a plan that ratelimit.plans does not define")
			}
			pl.validate(conf.Join(p, "plans."+name), &errs)
		}
	}
	switch c.Redis.OnError {
	case "local", "allow", "refuse":
	default:
		errs.Add("redis.on_error", "want local, allow or refuse, got %q", c.Redis.OnError)
	}
	if c.Redis.Timeout.D() < time.Millisecond {
		errs.Add("redis.timeout", "must be at least 1ms")
	}
	return errs.Err()
}

func (j JWTConfig) enabled() bool { return j.Secret != "" || j.PublicKeyFile != "" }

func (j JWTConfig) validate() error {
	var errs conf.Errors
	if !j.enabled() {
		if len(j.Algorithms) > 0 || j.Issuer != "" || j.Audience != "" {
			errs.Add("", "set secret or public_key_file to verify tokens")
		}
		return errs.Err()
	}
	if j.Secret != "" && len(j.Secret) < 32 {
		errs.Add("secret", "must be at least 32 bytes for HS256 (RFC 7518 section 3.2)")
	}
	pubAlg := ""
	if j.PublicKeyFile != "" {
		k, err := loadPublicKey(j.PublicKeyFile)
		if err != nil {
			errs.Add("public_key_file", "%v", err)
		} else {
			pubAlg = algFor(k)
		}
	}
	for i, a := range j.Algorithms {
		p := fmt.Sprintf("algorithms[%d]", i)
		switch a {
		case "HS256":
			if j.Secret == "" {
				errs.Add(p, "HS256 needs a secret")
			}
		case "RS256", "ES256":
			if j.PublicKeyFile != "" && pubAlg != "" && pubAlg != a {
				errs.Add(p, "%s does not match the public key, which is for %s", a, pubAlg)
			}
			if j.PublicKeyFile == "" {
				errs.Add(p, "%s needs public_key_file", a)
			}
		default:
			errs.Add(p, "want HS256, RS256 or ES256, got %q", a)
		}
	}
	return errs.Err()
}
