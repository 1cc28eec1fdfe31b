package ratelimit

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDesignExample(t *testing.T) {
	dir := t.TempDir()
	keys := writeFile(t, dir, "keys.yaml", `"k1": {plan: pro, subject: bob}`)
	yml := yamlWith(`
ratelimit:
  store: memory
  ip: {rate: 20/s, burst: 40}
  identify:
    header: X-API-Key
    keys_file: KEYS
    jwt: {secret: "${JWT_SECRET}", plan_claim: plan}
  plans:
    free: {rate: 100/h, burst: 20}
    pro:  {rate: 10000/h, burst: 200}
  rules:
    - path: /login
      methods: [post]
      by: ip
      rate: 5/m
      burst: 5
`, "KEYS", keys)
	cfg, err := parseConfig(t, yml, map[string]string{"JWT_SECRET": strings.Repeat("s", 32)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.IPv6Prefix, 64; got != want {
		t.Errorf("ipv6_prefix default: got %d, want %d", got, want)
	}
	if got, want := cfg.Rules[0].Name, "POST /login"; got != want {
		t.Errorf("rule name: got %q, want %q", got, want)
	}
	if got, want := cfg.Identify.Keyless, "ip"; got != want {
		t.Errorf("keyless default: got %q, want %q", got, want)
	}
	if got, want := cfg.Redis.Timeout.D(), 100*time.Millisecond; got != want {
		t.Errorf("redis.timeout default: got %v, want %v", got, want)
	}
	if _, err := New(cfg, Options{Logger: quietLogger()}); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yml string
		want      []string
	}{
		{"unknown key", "ratelimit:\n  ip: {rate: 1/s, brust: 2}\n", []string{"ratelimit.ip.brust: unknown key (did you mean \"burst\"?) (line 2)"}},
		{"bad rate", "ratelimit:\n  ip: {rate: 5/fortnight}\n", []string{"ratelimit.ip.rate: \"5/fortnight\" is not a rate"}},
		{"store", "ratelimit:\n  store: mysql://x\n", []string{"ratelimit.store: want memory or a URL such as redis://host:6379/0"}},
		{"burst without rate", "ratelimit:\n  ip: {burst: 3}\n", []string{"ratelimit.ip.burst: is set but rate is not"}},
		{"prefix", "ratelimit:\n  ipv6_prefix: 129\n", []string{"ratelimit.ipv6_prefix: must be between 1 and 128"}},
		{"keyless", "ratelimit:\n  identify: {keyless: maybe}\n", []string{"ratelimit.identify.keyless: want ip, allow or refuse"}},
		{"header without keys file", "ratelimit:\n  identify: {header: X-API-Key}\n  plans: {free: {rate: 1/s}}\n", []string{"ratelimit.identify.keys_file: is required"}},
		{"short secret", "ratelimit:\n  identify: {jwt: {secret: short}}\n  plans: {free: {rate: 1/s}}\n", []string{"ratelimit.identify.jwt.secret: must be at least 32 bytes"}},
		{"alg none", "ratelimit:\n  identify: {jwt: {secret: " + strings.Repeat("x", 32) + ", algorithms: [none]}}\n  plans: {free: {rate: 1/s}}\n", []string{"ratelimit.identify.jwt.algorithms[0]: want HS256, RS256 or ES256"}},
		{"rule", "ratelimit:\n  rules:\n    - {path: login, by: user}\n", []string{
			"ratelimit.rules[0].path: must start with /",
			"ratelimit.rules[0].by: want ip or plan",
			"ratelimit.rules[0].rate: is required"}},
		{"rule plan unknown", "ratelimit:\n  plans: {free: {rate: 1/s}}\n  rules:\n    - {path: /a, by: plan, rate: 1/s, plans: {gold: {rate: 2/s}}}\n", []string{"ratelimit.rules[0].plans.gold: names a plan that ratelimit.plans does not define"}},
		{"huge burst", "ratelimit:\n  ip: {rate: 1/d, burst: 100000000}\n", []string{"ratelimit.ip.burst: 100000000 at 1/d spans more than a century"}},
		{"on_error", "ratelimit:\n  redis: {on_error: panic}\n", []string{"ratelimit.redis.on_error: want local, allow or refuse"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(t, tc.yml, nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigEmptyIsNoLimits(t *testing.T) {
	l := newLimiter(t, "ratelimit: {}\n", nil, nil)
	for range 100 {
		if w := do(l, "GET", "/", "192.0.2.1"); w.Code != 200 || w.Header().Get("RateLimit") != "" {
			t.Fatalf("got %d %q, want 200 without headers", w.Code, w.Header().Get("RateLimit"))
		}
	}
}
