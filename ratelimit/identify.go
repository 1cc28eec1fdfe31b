package ratelimit

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.yaml.in/yaml/v3"
)

// keyEntry is one API key from the keys file.
type keyEntry struct {
	plan    int // index into state.plans
	subject string
}

// keySet is one version of the keys file.
type keySet struct {
	keys map[string]keyEntry
	stat fileStamp
}

// fileStamp tells whether a file changed since it was read.
type fileStamp struct {
	mod  int64
	size int64
	ino  uint64
}

func stampOf(fi os.FileInfo) fileStamp {
	return fileStamp{mod: fi.ModTime().UnixNano(), size: fi.Size(), ino: inode(fi)}
}

// loadKeys reads a keys file: a YAML map "<key>": {plan: NAME, subject: S}.
// Every key must name a defined plan; one bad entry rejects the whole file
// (the caller keeps the old set), since half a key file would lock paying
// clients out.
func loadKeys(path string, planIndex map[string]int) (*keySet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading keys file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading keys file: %w", err)
	}
	data, err := readAllLimited(f, 64<<20)
	if err != nil {
		return nil, fmt.Errorf("reading keys file %s: %w", path, err)
	}
	var raw map[string]struct {
		Plan    string `yaml:"plan"`
		Subject string `yaml:"subject"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("keys file %s: %w", path, err)
	}
	ks := &keySet{keys: make(map[string]keyEntry, len(raw)), stat: stampOf(fi)}
	var bad []string
	for k, v := range raw {
		idx, ok := planIndex[v.Plan]
		if k == "" || !ok {
			bad = append(bad, fmt.Sprintf("key %s…: plan %q is not defined in ratelimit.plans", redact(k), v.Plan))
			continue
		}
		sub := v.Subject
		if sub == "" {
			// Never use the key itself as a bucket name: it would end up
			// in Redis and in logs.
			d := sha256.Sum256([]byte(k))
			sub = "key-" + hex.EncodeToString(d[:8])
		}
		ks.keys[k] = keyEntry{plan: idx, subject: sub}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("keys file %s: %s", path, strings.Join(bad, "; "))
	}
	return ks, nil
}

// redact keeps the first few characters of a secret for a log line.
func redact(k string) string {
	if len(k) > 4 {
		return k[:4]
	}
	return ""
}

// jwtVerifier checks bearer tokens. Each algorithm family verifies only
// with its own kind of key, and the parser is told the accepted algorithms,
// so "none" and HS/RS confusion (an HS256 token whose HMAC key is the RSA
// public key's bytes) are refused twice over.
type jwtVerifier struct {
	secret    []byte
	pub       crypto.PublicKey
	parser    *jwt.Parser
	planClaim string
	subClaim  string
}

func newJWTVerifier(c JWTConfig, now func() time.Time) (*jwtVerifier, error) {
	if !c.enabled() {
		return nil, nil
	}
	v := &jwtVerifier{planClaim: c.PlanClaim, subClaim: c.SubjectClaim}
	algs := c.Algorithms
	if c.Secret != "" {
		v.secret = []byte(c.Secret)
		if len(c.Algorithms) == 0 {
			algs = append(algs, "HS256")
		}
	}
	if c.PublicKeyFile != "" {
		k, err := loadPublicKey(c.PublicKeyFile)
		if err != nil {
			return nil, err
		}
		v.pub = k
		if len(c.Algorithms) == 0 {
			algs = append(algs, algFor(k))
		}
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithLeeway(c.Leeway.D()),
		jwt.WithTimeFunc(now),
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// errAuth is a refusal whose text the client may read.
type errAuth struct{ msg string }

func (e *errAuth) Error() string { return e.msg }

// maxTokenLen bounds the work an unauthenticated client can ask for.
const maxTokenLen = 8 << 10

// verify returns the plan name and subject a valid token carries.
func (v *jwtVerifier) verify(tok string) (plan, subject string, err error) {
	if len(tok) > maxTokenLen {
		return "", "", &errAuth{"token is too long"}
	}
	claims := jwt.MapClaims{}
	_, err = v.parser.ParseWithClaims(tok, claims, v.key)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", "", &errAuth{"token has expired"}
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "", "", &errAuth{"token is not valid yet"}
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "", "", &errAuth{"token signature or algorithm is not accepted"}
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "", "", &errAuth{"token is malformed"}
	default:
		return "", "", &errAuth{"token is not valid"}
	}
	plan, ok := claims[v.planClaim].(string)
	if !ok || plan == "" {
		return "", "", &errAuth{"token names no plan"}
	}
	subject, ok = claims[v.subClaim].(string)
	if !ok || subject == "" {
		return "", "", &errAuth{"token names no subject"}
	}
	return plan, subject, nil
}

// key picks the verification key after the token's algorithm family, never
// after its claims, and refuses an algorithm whose key is not configured.
func (v *jwtVerifier) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if v.secret != nil {
			return v.secret, nil
		}
	case *jwt.SigningMethodRSA:
		if k, ok := v.pub.(*rsa.PublicKey); ok {
			return k, nil
		}
	case *jwt.SigningMethodECDSA:
		if k, ok := v.pub.(*ecdsa.PublicKey); ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no key for algorithm %v", t.Header["alg"])
}

// loadPublicKey reads an RSA (2048 bits or more) or ECDSA P-256 public key
// in PEM, as a PKIX "PUBLIC KEY" block or an X.509 certificate.
func loadPublicKey(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("%s holds no PEM block", path)
	}
	var k any
	switch b.Type {
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		k, err = x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(b.Bytes); err == nil {
			k = c.PublicKey
		}
	default:
		return nil, fmt.Errorf("%s: want a PUBLIC KEY or CERTIFICATE block, got %s", path, b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%s: RSA key of %d bits, want at least 2048", path, k.N.BitLen())
		}
		return k, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%s: ECDSA key not on P-256 (ES256 only)", path)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%s: want an RSA or ECDSA public key, got %T", path, k)
}

func algFor(k crypto.PublicKey) string {
	if _, ok := k.(*ecdsa.PublicKey); ok {
		return "ES256"
	}
	return "RS256"
}

// bearer returns the token of an "Authorization: Bearer" header
// (RFC 6750 section 2.1; the scheme is case-insensitive).
func bearer(h http.Header) (string, bool) {
	v := h.Get("Authorization")
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	return strings.TrimSpace(v[7:]), true
}

// queryValue finds name in a raw query without building url.Values, so a
// request that carries no key costs no allocation.
func queryValue(raw, name string) (string, bool) {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(part, "=")
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return "", true
			}
			v = u
		}
		return v, true
	}
	return "", false
}
