package conf

import (
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Size
		err  bool
	}{
		{"512", 512, false}, {"32KiB", 32 << 10, false}, {"100MiB", 100 << 20, false}, {"1GiB", 1 << 30, false},
		{"1.5KiB", 1536, false}, {"10kb", 10000, false}, {"2MB", 2e6, false}, {"7B", 7, false}, {" 4KiB ", 4096, false},
		{"", 0, true}, {"lots", 0, true}, {"-1KiB", 0, true}, {"1XB", 0, true}, {"NaN", 0, true}, {"1e30GiB", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
	if s := Size(32 << 10).String(); s != "32KiB" {
		t.Errorf("String = %q", s)
	}
}

func TestParseDurationAndRate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "1h30m": 90 * time.Minute, "365d": 365 * 24 * time.Hour, "0s": 0} {
		got, err := ParseDuration(in)
		if err != nil || got.D() != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"30", "soon", "-5s", "1y"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
	rates := map[string]float64{"20/s": 20, "100/h": 100.0 / 3600, "5/m": 5.0 / 60, "1000/d": 1000.0 / 86400, "0.5/s": 0.5}
	for in, want := range rates {
		r, err := ParseRate(in)
		if err != nil || r.PerSecond() != want {
			t.Errorf("ParseRate(%q) = %v/s, %v; want %v/s", in, r.PerSecond(), err, want)
		}
	}
	for _, bad := range []string{"20", "20/fortnight", "x/s", "-1/s", "/s"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"A": "1", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct{ in, want, err string }{
		{"${A}", "1", ""},
		{"x${A}y${A}", "x1y1", ""},
		{"${MISSING:-def}", "def", ""},
		{"${EMPTY:-def}", "def", ""},
		{"${EMPTY}", "", ""},
		{"$${A}", "${A}", ""},
		{"cost: $5", "cost: $5", ""},
		{"${MISSING}", "", "MISSING is not set"},
		{"${A", "", "unclosed"},
		{"${1BAD}", "", "not a variable reference"},
	}
	for _, tt := range tests {
		got, err := Expand(tt.in, lookup)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Expand(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

type inner struct {
	Name  string            `yaml:"name"`
	Tags  []string          `yaml:"tags"`
	Limit Rate              `yaml:"limit"`
	Extra map[string]string `yaml:"extra"`
}

type outer struct {
	Size    Size     `yaml:"size"`
	Wait    Duration `yaml:"wait"`
	Count   int      `yaml:"count"`
	On      bool     `yaml:"on"`
	Inner   inner    `yaml:"inner"`
	Items   []inner  `yaml:"items"`
	Pointer *inner   `yaml:"pointer"`
}

func TestDecodeStrictWithLines(t *testing.T) {
	t.Parallel()
	src := `size: 4KiB
wait: 2s
count: 3
on: true
inner:
  name: x
  tags: [a, b]
  limit: 5/m
  extra: {k: v}
items:
  - name: one
  - name: two
    colour: blue
pointer:
  name: p
`
	f, err := Parse("t.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var o outer
	errs := f.Decode("", &o)
	if len(errs) != 1 || errs[0].Path != "items[1].colour" || errs[0].Line != 13 {
		t.Fatalf("errors %v, want one unknown key items[1].colour on line 13", errs)
	}
	if o.Size != 4096 || o.Wait.D() != 2*time.Second || o.Count != 3 || !o.On || o.Inner.Name != "x" ||
		len(o.Inner.Tags) != 2 || o.Inner.Limit.PerSecond() != 5.0/60 || o.Inner.Extra["k"] != "v" ||
		len(o.Items) != 2 || o.Pointer == nil || o.Pointer.Name != "p" {
		t.Errorf("decoded %+v", o)
	}
	if got := f.Line("inner.limit"); got != 8 {
		t.Errorf("Line(inner.limit) = %d, want 8", got)
	}
	if got := f.Line("inner.nothere"); got != 5 {
		t.Errorf("Line of a missing key = %d, want its section's line 5", got)
	}
}

func TestDecodeAliasBomb(t *testing.T) {
	t.Parallel()
	src := "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
	f, err := Parse("bomb.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		D [][][][]string `yaml:"d"`
	}
	errs := f.Decode("", &v)
	if len(errs) == 0 || !strings.Contains(errs.Error(), "too many YAML aliases") {
		t.Errorf("alias expansion was not bounded: %v", errs)
	}
}

func TestFlattenAndJoin(t *testing.T) {
	t.Parallel()
	var errs Errors
	errs.Add("workers", "must be at least %d", 1)
	var outer Errors
	outer.AddErr("app", errs)
	if got := outer.Error(); got != "app.workers: must be at least 1" {
		t.Errorf("got %q", got)
	}
	if Join("static", "[1].root") != "static[1].root" || Join("", "a") != "a" || Join("a", "") != "a" {
		t.Errorf("Join")
	}
}
