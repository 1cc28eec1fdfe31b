package main

import (
	"os"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/conf"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestConfigErrors checks that each kind of mistake is reported with the
// key path and the line it is on.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string // each must appear, in order, one per problem
	}{
		{"unknown top-level key", "server:\n  listen: \":8080\"\nservre:\n  x: 1\n",
			[]string{`servre: unknown key (did you mean "server"?) (line 3)`}},
		{"unknown nested key", "server:\n  listne: \":8080\"\n",
			[]string{`server.listne: unknown key (did you mean "listen"?) (line 2)`}},
		{"wrong type", "server:\n  hosts: example.com\n",
			[]string{`server.hosts: want a list such as [a, b], got "example.com" (line 2)`}},
		{"bad size", "server:\n  max_body_bytes: 100MB?\n",
			[]string{`server.max_body_bytes: "100MB?" is not a size`, `(line 2)`}},
		{"bad duration", "server:\n  idle_timeout: 75\n",
			[]string{`server.idle_timeout: "75" is not a duration`, `(line 2)`}},
		{"bad rate", "ratelimit:\n  ip: {rate: 20/fortnight, burst: 40}\n",
			[]string{`ratelimit.ip.rate: "20/fortnight" is not a rate`, `(line 2)`}},
		{"bad number", "app:\n  upstreams: [\"127.0.0.1:8000\"]\n  workers: four\n",
			[]string{`app.workers: want a whole number, got "four" (line 3)`}},
		{"validation in a package", "app:\n  upstreams: [\"127.0.0.1:8000\"]\n  workers: -2\n",
			[]string{`app.workers: must be at least 1 (line 3)`}},
		{"two app kinds", "app:\n  upstreams: [\"127.0.0.1:8000\"]\n  command: [\"x\"]\n",
			[]string{`app: set exactly one of wsgi, command and upstreams (found 2) (line 1)`}},
		{"bad listen address", "server:\n  listen: \"localhost\"\n",
			[]string{`server.listen: "localhost" is not host:port`, `(line 2)`}},
		{"bad trusted proxy", "server:\n  trusted_proxies: [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n",
			[]string{`server.trusted_proxies[1]: "10.0.0.0/40" is not a CIDR`, `(line 2)`}},
		{"unset variable", "server:\n  listen: \":${PORT}\"\n",
			[]string{`server.listen: environment variable PORT is not set`, `(line 2)`}},
		{"yaml syntax", "server:\n  listen: [\":8080\"\n",
			[]string{`YAML syntax:`}},
		{"every problem, not just the first", "server:\n  listne: 1\n  idle_timeout: soon\nlog:\n  format: xml\n",
			[]string{`server.listne: unknown key`, `server.idle_timeout: "soon" is not a duration`, `log.format: must be json or text, got "xml" (line 5)`}},
		{"duplicate key", "server:\n  listen: \":1\"\n  listen: \":2\"\n",
			[]string{`server.listen: key appears twice (line 3)`}},
		{"tls mode", "tls:\n  mode: sometimes\n",
			[]string{`tls.mode: must be auto, manual, self_signed or off, got "sometimes" (line 2)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig("test.yaml", []byte(tt.yaml), env(nil))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			got := err.Error()
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error\n%s\ndoes not contain (in order) %q", got, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestConfigEnvExpansion(t *testing.T) {
	t.Parallel()
	y := "server:\n  listen: \"127.0.0.1:${PORT:-8080}\"\n  headers:\n    X-Secret: \"${SECRET}\"\n    X-Literal: \"$${NOT_A_VAR}\"\n"
	cfg, err := parseConfig("t.yaml", []byte(y), env(map[string]string{"SECRET": "s3cr3t: {not yaml}"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Server.Listen[0]; got != "127.0.0.1:8080" {
		t.Errorf("listen = %q, want the default port", got)
	}
	if got := cfg.Server.Headers["X-Secret"]; got != "s3cr3t: {not yaml}" {
		t.Errorf("X-Secret = %q: a variable's value must not be parsed as YAML", got)
	}
	if got := cfg.Server.Headers["X-Literal"]; got != "${NOT_A_VAR}" {
		t.Errorf("X-Literal = %q, want the literal ${NOT_A_VAR}", got)
	}
}

func TestConfigSectionsAbsentAreOff(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig("t.yaml", []byte("server:\n  listen: \":8080\"\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.App != nil || cfg.RateLimit != nil || cfg.Admin != nil || cfg.Compression != nil {
		t.Errorf("absent sections must be nil (off): %+v", cfg)
	}
	if cfg.TLS.Mode != "off" {
		t.Errorf("tls.mode = %q without listen_tls, want off", cfg.TLS.Mode)
	}
}

// TestExampleConfig keeps config.example.yaml in step with the structs: it
// must decode strictly and validate, and mention every key the structs
// have.
func TestExampleConfig(t *testing.T) {
	// Relative paths in the file are relative to the directory gatehouse
	// runs in, as the README runs it: the repository root.
	t.Chdir("../..")
	data, err := os.ReadFile("config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseConfig("config.example.yaml", data, env(nil)); err != nil {
		t.Fatalf("config.example.yaml does not load:\n%v", err)
	}
	f, err := conf.Parse("config.example.yaml", data, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"server.listen", "server.max_body_bytes", "server.trusted_proxies", "app.queue_timeout",
		"app.max_rss", "tls.mode", "admin.listen", "log.access", "compression.min_size"} {
		if !f.Has(key) {
			t.Errorf("config.example.yaml does not document %s", key)
		}
	}
}

// FuzzConfig feeds arbitrary files to the loader: it must never panic, and
// a file it accepts must load the same way twice.
func FuzzConfig(f *testing.F) {
	if data, err := os.ReadFile("../../config.example.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("server:\n  listen: \":8080\"\n  hosts: [a, b]\n"))
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Add([]byte("server: ${X:-}\napp: [1, 2]\nratelimit: {plans: {free: {rate: 1/s}}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseConfig("fuzz.yaml", data, env(map[string]string{"X": "1"}))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if _, err := parseConfig("fuzz.yaml", data, env(map[string]string{"X": "1"})); err != nil {
			t.Fatalf("accepted once, refused the second time: %v", err)
		}
		_ = cfg
	})
}
