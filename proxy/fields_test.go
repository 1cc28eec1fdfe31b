package proxy

import (
	"net/http"
	"testing"
)

// The lists and the switches say the same: deleteFields uses either.
func TestFieldListsMatchTheirSwitches(t *testing.T) {
	for _, c := range []struct {
		name string
		keys []string
		is   func(string) bool
	}{{"spoofable", spoofable, isSpoofable}, {"hop-by-hop", hopHeaders, isHopHeader}} {
		for _, k := range c.keys {
			if !c.is(k) {
				t.Errorf("%s: %q is listed but its switch says no", c.name, k)
			}
		}
		for _, k := range []string{"Host", "Accept", "X-Forwarded", "Cookie", "x-real-ip"} {
			if c.is(k) {
				t.Errorf("%s: %q is not listed but its switch says yes", c.name, k)
			}
		}
	}
}

func TestDeleteFields(t *testing.T) {
	for _, extra := range []int{0, 3, 20} { // fewer fields than keys, and more
		h := http.Header{"X-Forwarded-For": {"1.2.3.4"}, "X-Real-Ip": {"1.2.3.4"}, "Accept": {"*/*"}}
		for i := range extra {
			h[http.CanonicalHeaderKey("X-Other-"+string(rune('a'+i)))] = []string{"v"}
		}
		deleteFields(h, spoofable, isSpoofable)
		if _, ok := h["X-Forwarded-For"]; ok {
			t.Errorf("%d extra fields: X-Forwarded-For kept", extra)
		}
		if _, ok := h["X-Real-Ip"]; ok {
			t.Errorf("%d extra fields: X-Real-Ip kept", extra)
		}
		if len(h) != 1+extra {
			t.Errorf("%d extra fields: %d left, want %d: %v", extra, len(h), 1+extra, h)
		}
	}
}
