package workers

import (
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/conf"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		yaml string
		want string // substring of the error, "" for none
	}{
		{"upstreams: [127.0.0.1:8000]", ""},
		{"wsgi: mysite.wsgi:application\nworkers: 2", ""},
		{"command: [node, server.js]", ""},
		{"workers: 2", "set exactly one of wsgi, command and upstreams"},
		{"wsgi: a:b\nupstreams: [x:1]", "set exactly one"},
		{"wsgi: mysite.wsgi", "wsgi: want module:callable"},
		{"upstreams: [localhost]", "upstreams[0]: want host:port"},
		{"upstreams: [a:1]\nthreads: -1", "threads: must be at least 1"},
		{"upstreams: [a:1]\nmemory: vsz", "memory: want unshared, rss or pss"},
		{"upstreams: [a:1]\nmax_rss: 512MiB\nmax_rss_hard: 256MiB", "max_rss_hard: must be above max_rss"},
		{"upstreams: [a:1]\nhealth_check: {path: health}", "health_check.path: must start with /"},
	}
	for _, tt := range tests {
		f, err := conf.Parse("t.yaml", []byte(tt.yaml), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		var c Config
		if errs := f.Decode("", &c); errs != nil {
			t.Fatalf("%q: decode: %v", tt.yaml, errs)
		}
		c.Defaults()
		err = c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%q: unexpected error %v", tt.yaml, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: got %v, want %q", tt.yaml, err, tt.want)
		}
	}
}

func TestConfigUnknownKey(t *testing.T) {
	f, _ := conf.Parse("t.yaml", []byte("upstreams: [a:1]\nworkerz: 3\n"), func(string) (string, bool) { return "", false })
	var c Config
	errs := f.Decode("", &c)
	if len(errs) != 1 || errs[0].Line != 2 || !strings.Contains(errs[0].Msg, `did you mean "workers"`) {
		t.Errorf("got %v", errs)
	}
}
