package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startTLSFront runs a Server with HTTPS on loopback and returns the plain
// and TLS addresses.
func startTLSFront(t *testing.T, tc TLSConfig, mut func(*Config)) (plain, secure string, s *Server) {
	t.Helper()
	backend, _ := startBackend(t)
	cfg := testConfig(func(c *Config) {
		c.ListenTLS = Addrs{"127.0.0.1:0"}
		c.Hosts = []string{"localhost", "a.example.test", "b.example.test"}
		if mut != nil {
			mut(c)
		}
	})
	if tc.Storage == "" {
		tc.Storage = t.TempDir()
	}
	tc.Defaults()
	if err := tc.Validate(); err != nil {
		t.Fatal(err)
	}
	s = serveOptions(t, withBackend(t, backend, Options{Config: cfg, TLS: tc}))
	return s.Addrs()[0].String(), s.Addrs()[1].String(), s
}

func insecureClient(addr string, h2 bool) *http.Client {
	return &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			ForceAttemptHTTP2: h2,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			},
		},
	}
}

func TestRedirectAndHSTS(t *testing.T) {
	t.Parallel()
	plain, secure, _ := startTLSFront(t, TLSConfig{Mode: "self_signed", HSTS: 365 * 24 * 3600e9, HSTSIncludeSubdomains: true}, nil)
	res, err := insecureClient(plain, false).Get("http://localhost/path/x?q=1&r=2")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	_, port, _ := net.SplitHostPort(secure)
	if want := "https://localhost:" + port + "/path/x?q=1&r=2"; res.StatusCode != 308 || res.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d Location %q, want 308 to %q", res.StatusCode, res.Header.Get("Location"), want)
	}
	if res.Header.Get("Strict-Transport-Security") != "" {
		t.Errorf("HSTS sent over plain HTTP")
	}
	for _, h2 := range []bool{false, true} {
		res, err := insecureClient(secure, h2).Get("https://localhost/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if got := res.Header.Get("Strict-Transport-Security"); got != "max-age=31536000; includeSubDomains" {
			t.Errorf("h2=%v: HSTS %q", h2, got)
		}
		if wantMajor := map[bool]int{false: 1, true: 2}[h2]; res.ProtoMajor != wantMajor {
			t.Errorf("h2=%v: served over %s", h2, res.Proto)
		}
		if !strings.Contains(string(body), `"proto":"https"`) {
			t.Errorf("h2=%v: the app was not told the client used HTTPS: %s", h2, body)
		}
	}
}

func TestGuardAppliesOverTLS(t *testing.T) {
	t.Parallel()
	_, secure, _ := startTLSFront(t, TLSConfig{Mode: "self_signed"}, nil)
	c, err := tls.Dial("tcp", secure, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	b := make([]byte, 64)
	n, _ := io.ReadAtLeast(c, b, 12)
	if !strings.HasPrefix(string(b[:n]), "HTTP/1.1 400") {
		t.Errorf("smuggling shape over TLS: %q, want 400", b[:n])
	}
}

func TestTLSPolicy(t *testing.T) {
	t.Parallel()
	_, secure, _ := startTLSFront(t, TLSConfig{Mode: "self_signed"}, nil)
	// TLS 1.1 and below are refused.
	if c, err := tls.Dial("tcp", secure, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Errorf("a TLS 1.1 handshake succeeded")
	}
	// CBC suites are not offered on TLS 1.2.
	cbc := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
	if c, err := tls.Dial("tcp", secure, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: cbc}); err == nil {
		c.Close()
		t.Errorf("a TLS 1.2 handshake with only CBC suites succeeded")
	}
	c, err := tls.Dial("tcp", secure, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	st := c.ConnectionState()
	c.Close()
	if st.NegotiatedProtocol != "h2" || !strings.Contains(tls.CipherSuiteName(st.CipherSuite), "GCM") && !strings.Contains(tls.CipherSuiteName(st.CipherSuite), "CHACHA20") {
		t.Errorf("TLS 1.2: ALPN %q suite %s", st.NegotiatedProtocol, tls.CipherSuiteName(st.CipherSuite))
	}
	// The self-signed certificate covers the configured names.
	leaf := st.PeerCertificates[0]
	for _, name := range []string{"localhost", "a.example.test", "b.example.test"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("self-signed certificate: %v", err)
		}
	}
}

func TestManualCertificatesBySNIAndReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := CertPair{filepath.Join(dir, "a.pem"), filepath.Join(dir, "a.key")}
	b := CertPair{filepath.Join(dir, "b.pem"), filepath.Join(dir, "b.key")}
	if err := writeSelfSigned(a, []string{"a.example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := writeSelfSigned(b, []string{"b.example.test"}); err != nil {
		t.Fatal(err)
	}
	_, secure, s := startTLSFront(t, TLSConfig{Mode: "manual", CertFile: a.CertFile, KeyFile: a.KeyFile, Certificates: []CertPair{b}}, nil)
	leafFor := func(name string) *x509.Certificate {
		c, err := tls.Dial("tcp", secure, &tls.Config{InsecureSkipVerify: true, ServerName: name})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	if leafFor("b.example.test").VerifyHostname("b.example.test") != nil || leafFor("a.example.test").VerifyHostname("a.example.test") != nil {
		t.Fatal("SNI did not choose the matching certificate")
	}
	old := leafFor("a.example.test").SerialNumber

	// A broken replacement is refused on reload and the old pair stays.
	_ = os.WriteFile(a.CertFile, []byte("not a certificate"), 0o644)
	if err := s.certs.reload(); err == nil {
		t.Errorf("reload accepted a broken certificate file")
	}
	if got := leafFor("a.example.test").SerialNumber; got.Cmp(old) != 0 {
		t.Errorf("a broken file replaced the served certificate")
	}
	// A good replacement is served after reload.
	if err := writeSelfSigned(a, []string{"a.example.test"}); err != nil {
		t.Fatal(err)
	}
	if err := s.certs.reload(); err != nil {
		t.Fatal(err)
	}
	if got := leafFor("a.example.test").SerialNumber; got.Cmp(old) == 0 {
		t.Errorf("reload kept serving the old certificate")
	}
}

func TestTLSConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  TLSConfig
		want string
	}{
		{TLSConfig{Mode: "manual"}, "cert_file: manual mode needs"},
		{TLSConfig{Mode: "manual", CertFile: "/nonexistent.pem", KeyFile: "/nonexistent.key"}, "cert_file: loading /nonexistent.pem"},
		{TLSConfig{Mode: "auto", CA: "ftp://x"}, "ca: want the ACME directory URL"},
		{TLSConfig{Mode: "auto", Challenges: []string{"dns-01"}}, `challenges[0]: must be http-01 or tls-alpn-01, got "dns-01"`},
		{TLSConfig{Mode: "auto", OnDemand: &OnDemandConfig{}}, "on_demand: needs an allow list or an ask URL"},
		{TLSConfig{Mode: "sometimes"}, "mode: must be auto, manual, self_signed or off"},
	}
	for _, tt := range tests {
		tt.cfg.Defaults()
		err := tt.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
