package ratelimit

import (
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzIdentify sends arbitrary API-key headers, query strings and
// Authorization headers through a limiter that reads all three: it must
// answer 200, 401 or 429, never panic, and admit only known keys and
// valid tokens.
func FuzzIdentify(f *testing.F) {
	dir := f.TempDir()
	keys := writeFile(f, dir, "keys.yaml", `{"good-key": {plan: pro, subject: s1}, "k%2F": {plan: free}}`)
	yml := yamlWith(`
ratelimit:
  ip: {rate: 1000/s, burst: 1000}
  identify:
    header: X-API-Key
    query: api_key
    keys_file: KEYS
    jwt: {secret: SECRET}
  plans:
    free: {rate: 1000/s, burst: 1000}
    pro: {rate: 1000/s, burst: 1000}
`, "KEYS", keys, "SECRET", testSecret)
	good := sign(&testing.T{}, jwt.SigningMethodHS256, []byte(testSecret), claims("exp", nil))
	f.Add("good-key", "", "")
	f.Add("", "api_key=good-key", "")
	f.Add("", "a=1&api_key=k%252F&b", "")
	f.Add("", "api_key=%zz", "")
	f.Add("", "", "Bearer "+good)
	f.Add("", "", "bearer "+good[:len(good)-3])
	f.Add("", "", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4IiwicGxhbiI6InBybyJ9.")
	f.Add("", "", "Bearer ....")
	f.Add("\x00", "api_key", "Basic Zm9vOmJhcg==")
	l := newLimiter(f, yml, newClock(), nil)
	f.Fuzz(func(t *testing.T, key, query, auth string) {
		r := request("GET", "/", "192.0.2.1")
		r.URL.RawQuery = query
		if key != "" {
			r.Header["X-Api-Key"] = []string{key}
		}
		if auth != "" {
			r.Header["Authorization"] = []string{auth}
		}
		w := httptest.NewRecorder()
		l.Wrap(okHandler).ServeHTTP(w, r)
		valid := map[string]bool{"good-key": true, "k%2F": true}
		if w.Code != 200 && w.Code != 401 && w.Code != 429 {
			t.Fatalf("status %d", w.Code)
		}
		if w.Code == 429 {
			// Out of tokens (the fuzzer's many bad keys cost IP tokens
			// too): says nothing about identification.
			return
		}
		admitted := w.Code == 200
		if key != "" {
			if admitted != valid[key] {
				t.Fatalf("header key %q: status %d", key, w.Code)
			}
			return
		}
		if v, ok := queryValue(query, "api_key"); ok {
			if admitted != valid[v] {
				t.Fatalf("query %q (key %q): status %d", query, v, w.Code)
			}
			return
		}
		if len(auth) < 7 || !strings.EqualFold(auth[:7], "bearer ") {
			if !admitted {
				t.Fatalf("keyless request refused: %d", w.Code)
			}
		}
	})
}

// FuzzJWT feeds arbitrary strings to the verifier: no panic, and anything
// accepted carries a known plan and a subject.
func FuzzJWT(f *testing.F) {
	v, err := newJWTVerifier(JWTConfig{Secret: testSecret, PlanClaim: "plan", SubjectClaim: "sub"}, newClock().Now)
	if err != nil {
		f.Fatal(err)
	}
	tt := &testing.T{}
	f.Add(sign(tt, jwt.SigningMethodHS256, []byte(testSecret), claims()))
	f.Add(sign(tt, jwt.SigningMethodHS256, []byte("wrong-"+testSecret), claims()))
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1IiwicGxhbiI6InBybyJ9.")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		plan, sub, err := v.verify(tok)
		if err == nil && (plan == "" || sub == "") {
			t.Fatalf("accepted %q with plan %q subject %q", tok, plan, sub)
		}
		if err != nil {
			if _, ok := err.(*errAuth); !ok {
				t.Fatalf("error %T %v is not a client-safe errAuth", err, err)
			}
		}
	})
}

// FuzzQueryValue checks the allocation-free query scan against
// net/url on every query url.ParseQuery accepts.
func FuzzQueryValue(f *testing.F) {
	for _, s := range []string{"api_key=abc", "a=1&api_key=x%20y&api_key=2", "api_key", "api_key=a+b", "x=%zz&api_key=1", "&&api_key=&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := queryValue(raw, "api_key")
		vals, err := url.ParseQuery(raw)
		if err != nil || strings.ContainsAny(raw, "%+") && strings.Contains(strings.Split(raw, "=")[0], "%") {
			return
		}
		want, has := vals["api_key"]
		if ok != has {
			t.Fatalf("%q: found %v, net/url %v", raw, ok, has)
		}
		if has && got != want[0] {
			t.Fatalf("%q: got %q, net/url %q", raw, got, want[0])
		}
	})
}

// FuzzMaskIP: whatever the address, the masked one is in the client's
// prefix and is the same for every address of that prefix.
func FuzzMaskIP(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, uint8(32), uint8(64))
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice(), uint8(24), uint8(56))
	f.Add(netip.MustParseAddr("::ffff:10.1.2.3").AsSlice(), uint8(8), uint8(128))
	f.Fuzz(func(t *testing.T, b []byte, v4, v6 uint8) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		st := maskState(int(v4%32)+1, int(v6%128)+1)
		m := st.maskIP(a)
		bits := st.cfg.IPv6Prefix
		if a.Unmap().Is4() {
			bits = st.cfg.IPv4Prefix
		}
		p := netip.PrefixFrom(a.Unmap(), bits).Masked()
		if !p.Contains(m) || m != p.Addr() {
			t.Fatalf("%v: masked %v, want %v", a, m, p.Addr())
		}
	})
}
