//go:build linux

package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run gatehouse in tls.mode auto against Pebble, Let's
// Encrypt's ACME test server (Debian package pebble), with
// pebble-challtestsrv as its DNS: every name resolves to 127.0.0.1, and
// Pebble validates challenges against gatehouse's own listeners.

// pebbleCA is a running Pebble.
type pebbleCA struct {
	dir      string // ACME directory URL
	mgmt     string // management base URL
	caRoot   string // PEM file that Pebble's own HTTPS cert chains to
	client   *http.Client
	httpPort int // where Pebble sends HTTP-01 validations
	tlsPort  int // where Pebble sends TLS-ALPN-01 validations
}

func startPebble(t *testing.T, validity time.Duration, blocked ...string) *pebbleCA {
	t.Helper()
	needProgram(t, "pebble", "pebble")
	needProgram(t, "pebble-challtestsrv", "pebble")
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := makeTestCA(t)
	caFile := filepath.Join(dir, "pebble-ca.pem")
	_ = os.WriteFile(caFile, caPEM, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o644)
	_ = os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)

	dnsPort, dnsMgmt := freePort(t), freePort(t)
	dns := exec.Command("pebble-challtestsrv", "-dns01", fmt.Sprintf("127.0.0.1:%d", dnsPort),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-management", fmt.Sprintf("127.0.0.1:%d", dnsMgmt),
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "")
	startBackground(t, dns)

	p := &pebbleCA{caRoot: caFile, httpPort: freePort(t), tlsPort: freePort(t)}
	listen, mgmt := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        mgmt,
		"certificate":                    filepath.Join(dir, "cert.pem"),
		"privateKey":                     filepath.Join(dir, "key.pem"),
		"httpPort":                       p.httpPort,
		"tlsPort":                        p.tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"domainBlocklist":                blocked,
		"certificateValidityPeriod":      int(validity.Seconds()),
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	_ = os.WriteFile(cfgFile, b, 0o644)
	pb := exec.Command("pebble", "-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))
	pb.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	startBackground(t, pb)
	waitListening(t, listen)
	waitListening(t, mgmt)
	p.dir = "https://" + listen + "/dir"
	p.mgmt = "https://" + mgmt
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	p.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	return p
}

// issuingRoots fetches the roots Pebble signs certificates with (made
// afresh at each start).
func (p *pebbleCA) issuingRoots(t *testing.T) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for i := 0; i < 2; i++ {
		res, err := p.client.Get(fmt.Sprintf("%s/roots/%d", p.mgmt, i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == 200 {
			pool.AppendCertsFromPEM(b)
		}
	}
	return pool
}

func startBackground(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(cmd.Path), out.String())
		}
	})
}

func makeTestCA(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// startACMEGatehouse runs gatehouse in auto mode on the ports Pebble
// validates against.
func startACMEGatehouse(t *testing.T, p *pebbleCA, host, extra string) (*gatehouseProc, string) {
	t.Helper()
	backend, _ := startPythonApp(t)
	storage := t.TempDir()
	tlsAddr := fmt.Sprintf("127.0.0.1:%d", p.tlsPort)
	cfg := fmt.Sprintf(`
server:
  listen: "127.0.0.1:%d"
  listen_tls: %q
  hosts: [%q]
tls:
  mode: auto
  ca: %q
  ca_root: %q
  email: ops@example.com
  storage: %q
%s
app: {upstreams: [%q]}
log: {level: debug, access: false}
`, p.httpPort, tlsAddr, host, p.dir, p.caRoot, storage, extra, backend)
	g := startGatehouseAt(t, cfg, fmt.Sprintf("127.0.0.1:%d", p.httpPort))
	return g, tlsAddr
}

// servedCert does a handshake for host and returns the leaf, verified
// against roots.
func servedCert(addr, host string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: host, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func waitForCert(t *testing.T, p *pebbleCA, g *gatehouseProc, addr, host string, notSerial *big.Int) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		leaf, err := servedCert(addr, host, p.issuingRoots(t))
		if err == nil && (notSerial == nil || leaf.SerialNumber.Cmp(notSerial) != 0) {
			return leaf
		}
		lastErr = err
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no certificate for %s verifying against Pebble's root within 60s (last: %v)\n%s", host, lastErr, g.log.String())
	return nil
}

func TestACMEHTTP01(t *testing.T) {
	p := startPebble(t, 0)
	host := "http01.gatehouse.test"
	g, tlsAddr := startACMEGatehouse(t, p, host, "  challenges: [http-01]")
	leaf := waitForCert(t, p, g, tlsAddr, host, nil)
	if leaf.VerifyHostname(host) != nil {
		t.Errorf("certificate names %v, want %s", leaf.DNSNames, host)
	}
	// The certificate is served for real requests over HTTP/2.
	pool := p.issuingRoots(t)
	c := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", tlsAddr)
		},
	}}
	res, err := c.Get("https://" + host + "/api/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.ProtoMajor != 2 || !strings.Contains(string(body), `"proto": "https"`) {
		t.Errorf("HTTPS request: %s %s %s", res.Proto, res.Status, body)
	}
}

func TestACMETLSALPN01AndRenewal(t *testing.T) {
	// Certificates valid for 40s, renewed in their last 75%: one renewal
	// within a few seconds of the first issue.
	p := startPebble(t, 40*time.Second)
	host := "alpn.gatehouse.test"
	g, tlsAddr := startACMEGatehouse(t, p, host, "  challenges: [tls-alpn-01]\n  renewal_window: 0.75\n  renew_check_interval: 1s")
	first := waitForCert(t, p, g, tlsAddr, host, nil)
	if life := first.NotAfter.Sub(first.NotBefore); life > time.Hour {
		t.Skipf("this Pebble ignores certificateValidityPeriod (lifetime %v); renewal not exercised", life)
	}
	second := waitForCert(t, p, g, tlsAddr, host, first.SerialNumber)
	if !second.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed certificate ends %v, not after the first's %v", second.NotAfter, first.NotAfter)
	}
}

func TestACMERefusalIsNotFatal(t *testing.T) {
	host := "refused.gatehouse.test"
	p := startPebble(t, 0, host)
	g, _ := startACMEGatehouse(t, p, host, "")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(g.log.String(), "rejectedIdentifier") {
		if time.Now().After(deadline) {
			t.Fatalf("the CA's refusal is not in the log:\n%s", g.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case err := <-g.done:
		t.Fatalf("gatehouse exited after the CA refused: %v", err)
	default:
	}
	// Still serving: plain HTTP answers with the redirect.
	req, _ := http.NewRequest("GET", g.url+"/x", nil)
	req.Host = host
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("plain HTTP after a refusal: %d, want 308", res.StatusCode)
	}
}

func TestACMEOnDemandOnlyForAllowedNames(t *testing.T) {
	p := startPebble(t, 0)
	g, tlsAddr := startACMEGatehouse(t, p, "fixed.gatehouse.test", `  challenges: [tls-alpn-01]
  on_demand:
    allow: ["*.customers.gatehouse.test"]`)
	roots := p.issuingRoots(t)
	leaf, err := servedCertRetry(tlsAddr, "shop.customers.gatehouse.test", roots, 60*time.Second)
	if err != nil {
		t.Fatalf("on-demand certificate for an allowed name: %v\n%s", err, g.log.String())
	}
	if leaf.VerifyHostname("shop.customers.gatehouse.test") != nil {
		t.Errorf("certificate names %v", leaf.DNSNames)
	}
	// A name nobody allowed gets no certificate, and no order is placed.
	if _, err := servedCert(tlsAddr, "attacker.example.test", roots); err == nil {
		t.Errorf("a certificate was served for a name outside the allow list")
	}
	if strings.Contains(g.log.String(), `attacker.example.test","challenge`) {
		t.Errorf("an ACME order was attempted for a name outside the allow list")
	}
}

func servedCertRetry(addr, host string, roots *x509.CertPool, within time.Duration) (*x509.Certificate, error) {
	deadline := time.Now().Add(within)
	for {
		leaf, err := servedCert(addr, host, roots)
		if err == nil || time.Now().After(deadline) {
			return leaf, err
		}
		time.Sleep(500 * time.Millisecond)
	}
}
