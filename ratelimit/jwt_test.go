package ratelimit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = strings.Repeat("k", 40)

type jwtKeys struct {
	rsa      *rsa.PrivateKey
	rsaPEM   string // the public key, as configured
	rsaPath  string
	ec       *ecdsa.PrivateKey
	ecPath   string
	otherRSA *rsa.PrivateKey
}

func makeJWTKeys(t *testing.T) jwtKeys {
	t.Helper()
	dir := t.TempDir()
	var k jwtKeys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.otherRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	pub := func(key any) string {
		der, err := x509.MarshalPKIXPublicKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	k.rsaPEM = pub(&k.rsa.PublicKey)
	k.rsaPath = writeFile(t, dir, "rsa.pem", k.rsaPEM)
	k.ecPath = writeFile(t, dir, "ec.pem", pub(&k.ec.PublicKey))
	return k
}

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(extra ...any) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "user-1", "plan": "pro", "exp": t0.Add(time.Hour).Unix()}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(c, extra[i].(string))
		} else {
			c[extra[i].(string)] = extra[i+1]
		}
	}
	return c
}

const jwtYAML = `
ratelimit:
  identify:
    jwt: {JWT}
  plans:
    free: {rate: 1/h, burst: 1}
    pro:  {rate: 1/h, burst: 3}
`

func TestJWT(t *testing.T) {
	k := makeJWTKeys(t)
	hs := "secret: " + testSecret
	rs := "public_key_file: " + k.rsaPath
	es := "public_key_file: " + k.ecPath
	both := hs + ", " + rs + ", algorithms: [HS256, RS256]"
	none := func() string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name, cfg, token string
		code             int
		msg              string
	}{
		{"hs256 ok", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims()), 200, ""},
		{"rs256 ok", rs, sign(t, jwt.SigningMethodRS256, k.rsa, claims()), 200, ""},
		{"es256 ok", es, sign(t, jwt.SigningMethodES256, k.ec, claims()), 200, ""},
		{"both: rs256 ok", both, sign(t, jwt.SigningMethodRS256, k.rsa, claims()), 200, ""},
		{"bad hmac signature", hs, sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 40)), claims()), 401, "signature"},
		{"bad rsa signature", rs, sign(t, jwt.SigningMethodRS256, k.otherRSA, claims()), 401, "signature"},
		{"tampered payload", hs, tamper(sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims())), 401, "signature"},
		{"alg none", hs, none(), 401, "signature or algorithm"},
		{"alg none with rsa", rs, none(), 401, "signature or algorithm"},
		// HS/RS confusion: the attacker signs with HMAC keyed by the public
		// key's PEM, hoping the server verifies HS256 with "its key".
		{"hs256 with public key as secret", rs, sign(t, jwt.SigningMethodHS256, []byte(k.rsaPEM), claims()), 401, "signature or algorithm"},
		{"hs256 with public key as secret, both configured", both, sign(t, jwt.SigningMethodHS256, []byte(k.rsaPEM), claims()), 401, "signature"},
		{"rs256 when only hmac", hs, sign(t, jwt.SigningMethodRS256, k.rsa, claims()), 401, "signature or algorithm"},
		{"es256 when rsa configured", rs, sign(t, jwt.SigningMethodES256, k.ec, claims()), 401, "signature or algorithm"},
		{"hs512 not accepted", hs, sign(t, jwt.SigningMethodHS512, []byte(testSecret), claims()), 401, "signature or algorithm"},
		{"expired", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("exp", t0.Add(-time.Second).Unix())), 401, "expired"},
		{"expired within leeway", hs + ", leeway: 5s", sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("exp", t0.Add(-time.Second).Unix())), 200, ""},
		{"not valid yet", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("nbf", t0.Add(time.Minute).Unix())), 401, "not valid yet"},
		{"nbf passed", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("nbf", t0.Add(-time.Minute).Unix())), 200, ""},
		{"no plan", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("plan", nil)), 401, "no plan"},
		{"unknown plan", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("plan", "gold")), 401, "unknown plan"},
		{"no subject", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("sub", nil)), 401, "no subject"},
		{"custom claims", hs + ", plan_claim: tier, subject_claim: uid", sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("tier", "free", "uid", "u9")), 200, ""},
		{"issuer mismatch", hs + ", issuer: https://auth.example", sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("iss", "https://evil.example")), 401, "not valid"},
		{"audience ok", hs + ", audience: api", sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("aud", []string{"web", "api"})), 200, ""},
		{"malformed", hs, "not.a.token", 401, "malformed"},
		{"garbage", hs, "xxxxxxxx", 401, "malformed"},
		{"too long", hs, strings.Repeat("a", 9000), 401, "too long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLimiter(t, yamlWith(jwtYAML, "JWT", tc.cfg), newClock(), nil)
			w := do(l, "GET", "/", "192.0.2.1", "Authorization", "Bearer "+tc.token)
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.msg) {
				t.Fatalf("got %d %q, want %d containing %q", w.Code, w.Body, tc.code, tc.msg)
			}
			if tc.code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
				t.Errorf("WWW-Authenticate: %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

// TestJWTPlanBucketBySubject: two tokens of one subject share a bucket;
// the plan's burst applies.
func TestJWTPlanBucketBySubject(t *testing.T) {
	l := newLimiter(t, yamlWith(jwtYAML, "JWT", "secret: "+testSecret), newClock(), nil)
	a := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("jti", "1"))
	b := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("jti", "2"))
	c := sign(t, jwt.SigningMethodHS256, []byte(testSecret), claims("sub", "user-2", "plan", "free"))
	var got []int
	for _, tok := range []string{a, b, a, b, c, c} {
		got = append(got, do(l, "GET", "/", "192.0.2.1", "Authorization", "bearer "+tok).Code)
	}
	if want := []int{200, 200, 200, 429, 200, 429}; !equalInts(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// tamper changes the payload's plan without re-signing.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p, _ := jwt.NewParser().DecodeSegment(parts[1])
	p = []byte(strings.Replace(string(p), `"pro"`, `"free"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(p)
	return strings.Join(parts, ".")
}
