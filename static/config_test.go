package static

import (
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/internal/conf"
)

func TestConfigYAML(t *testing.T) {
	t.Parallel()
	src := `
static:
  - url: /static/
    root: ./staticfiles
    immutable: auto
    max_age: 1h
  - url: /media/
    root: ./media
    immutable: never
  - url: /protected/
    root: ./private
    internal: true
    script_types: attachment
    max_age: 0s
`
	f, err := conf.Parse("t.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Static []Config `yaml:"static"`
	}
	if errs := f.Decode("", &doc); errs != nil {
		t.Fatal(errs)
	}
	for i := range doc.Static {
		doc.Static[i].Defaults()
	}
	if err := ValidateMounts(doc.Static); err != nil {
		t.Fatal(err)
	}
	s, m, p := doc.Static[0], doc.Static[1], doc.Static[2]
	if s.Kind != KindStatic || s.ScriptTypes != ScriptInline || s.MaxAge.D().Hours() != 1 || !*s.Compress {
		t.Errorf("static defaults: %+v", s)
	}
	if m.Kind != KindMedia || m.Immutable != ImmutableNever || m.ScriptTypes != ScriptSandbox {
		t.Errorf("media defaults: %+v", m)
	}
	if p.Kind != KindMedia || p.MaxAge.D() != 0 || p.ScriptTypes != ScriptAttachment {
		t.Errorf("internal: %+v", p)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	mounts := []Config{
		{URL: "static", Root: "x"},
		{URL: "/a/", Immutable: "sometimes"},
		{URL: "/a/", Root: "y", ScriptTypes: "run", Index: "../x"},
		{URL: "/b/../c/", Root: "z"},
	}
	for i := range mounts {
		mounts[i].Defaults()
	}
	err := ValidateMounts(mounts)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"[0].url", "[1].root", "[1].immutable", "[2].url", "[2].script_types", "[2].index", "[3].url"} {
		if !strings.Contains(err.Error(), want+":") {
			t.Errorf("no error for %s in:\n%v", want, err)
		}
	}
}
