package h2srv

import (
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// TestEncodeRoundTrip decodes what the encoder writes with the hpack
// package's decoder.
func TestEncodeRoundTrip(t *testing.T) {
	want := []hpack.HeaderField{
		{Name: ":status", Value: "200"}, {Name: ":status", Value: "103"}, {Name: ":status", Value: "999"},
		{Name: "content-type", Value: "text/plain"}, {Name: "x-request-id", Value: "abc"},
		{Name: "www-authenticate", Value: "Basic"}, {Name: "x-long", Value: strings.Repeat("v", 300)},
		{Name: strings.Repeat("n", 200), Value: ""},
	}
	var b []byte
	b = appendTableSizeZero(b)
	for _, f := range want {
		if f.Name == ":status" {
			code := int(f.Value[0]-'0')*100 + int(f.Value[1]-'0')*10 + int(f.Value[2]-'0')
			b = appendStatus(b, code)
		} else {
			b = appendField(b, f.Name, f.Value)
		}
	}
	got, err := hpack.NewDecoder(4096, nil).DecodeFull(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d fields, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Value != want[i].Value {
			t.Errorf("field %d: got %q: %q, want %q: %q", i, got[i].Name, got[i].Value, want[i].Name, want[i].Value)
		}
	}
}

func TestFieldPrefix(t *testing.T) {
	c := &conn{prefix: map[string]string{}}
	for _, tc := range []struct{ key, name string }{
		{"Content-Type", "content-type"}, {"X-Request-Id", "x-request-id"}, {"X-Custom-Thing", "x-custom-thing"},
		{"Connection", ""}, {"Transfer-Encoding", ""}, {"Bad Name", ""}, {"Www-Authenticate", "www-authenticate"},
	} {
		p := c.fieldPrefix(tc.key)
		if tc.name == "" {
			if p != "" {
				t.Errorf("%s: prefix %q, want none", tc.key, p)
			}
			continue
		}
		got, err := hpack.NewDecoder(4096, nil).DecodeFull(appendFieldPrefixed(nil, p, "v"))
		if err != nil || len(got) != 1 || got[0].Name != tc.name || got[0].Value != "v" {
			t.Errorf("%s: decoded %v, %v", tc.key, got, err)
		}
	}
}
