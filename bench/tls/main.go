// Command tls checks gatehouse's HTTPS against the tools people use and
// benchmarks it against nginx with the same certificate, in one run:
//
//   - testssl.sh (Debian testssl.sh): every finding of severity HIGH or
//     CRITICAL is listed (the goal is none);
//   - h2spec (Go module github.com/summerwind/h2spec): HTTP/2 conformance;
//   - h2load (Debian nghttp2-client): new TLS handshakes per second, and
//     small static responses per second over HTTP/2, gatehouse vs nginx,
//     both serving the same 100-byte file from disk, with ratios.
//
// Run from the repository root:
//
//	go run ./bench/tls                    # everything, a Markdown report on stdout
//	go run ./bench/tls -testssl=false     # skip testssl.sh (it takes minutes)
//	go run ./bench/tls -out bench/results/tls.md
//
// Everything listens on 127.0.0.1 and is stopped at the end.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/bench/internal/harness"
)

var (
	runTestssl = flag.Bool("testssl", true, "run testssl.sh (several minutes)")
	runH2spec  = flag.Bool("h2spec", true, "run h2spec")
	rounds     = flag.Int("rounds", 3, "h2load rounds per target (medians reported)")
	duration   = flag.Int("duration", 5, "seconds of one h2load request run")
	out        = flag.String("out", "", "also write the report to this file")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/tls:", err)
		os.Exit(1)
	}
}

func run() error {
	if err := harness.Need("nginx", "h2load"); err != nil {
		return fmt.Errorf("%w: apt-get install -y nginx-light nghttp2-client testssl.sh", err)
	}
	dir, err := os.MkdirTemp("", "gatehouse-tls-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	gh, err := harness.BuildGatehouse(dir)
	if err != nil {
		return err
	}
	caFile, certFile, keyFile, err := writeCerts(dir)
	if err != nil {
		return err
	}
	files := filepath.Join(dir, "files")
	_ = os.MkdirAll(files, 0o755)
	_ = os.WriteFile(filepath.Join(files, "hello.txt"), []byte(strings.Repeat("hello, gatehouse ", 6)[:100]), 0o644)

	ghPlain, ghTLS, ngTLS := harness.FreeAddr(), harness.FreeAddr(), harness.FreeAddr()
	ghConf := filepath.Join(dir, "gatehouse.yaml")
	_ = os.WriteFile(ghConf, []byte(fmt.Sprintf(`server:
  listen: %q
  listen_tls: %q
  hosts: [localhost, 127.0.0.1]
tls:
  mode: manual
  cert_file: %q
  key_file: %q
  hsts: 365d
static:
  - {url: /s/, root: %q, compress: false, precompressed: false}
log: {level: warn, access: false}
`, ghPlain, ghTLS, certFile, keyFile, files)), 0o600)
	g, err := harness.Start("gatehouse", []string{gh, "run", "-c", ghConf})
	if err != nil {
		return err
	}
	defer g.Stop()

	ngConf := filepath.Join(dir, "nginx.conf")
	_ = os.WriteFile(ngConf, []byte(fmt.Sprintf(`worker_processes auto;
pid %[1]s/nginx.pid;
error_log stderr error;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path %[1]s;
  sendfile on;
  open_file_cache max=1000;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305;
  ssl_session_cache shared:SSL:10m;
  # nginx closes a connection after 1000 requests by default (HTTP/2
  # included), which caps an h2load run whose clients do not reconnect.
  keepalive_requests 10000000;
  server {
    listen %[2]s ssl http2;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    location /s/ { alias %[5]s/; }
  }
}
`, dir, ngTLS, certFile, keyFile, files)), 0o600)
	ng, err := harness.Start("nginx", []string{"nginx", "-c", ngConf, "-p", dir, "-g", "daemon off;"})
	if err != nil {
		return err
	}
	defer ng.Stop()

	ghURL, ngURL := "https://"+ghTLS+"/s/hello.txt", "https://"+ngTLS+"/s/hello.txt"
	for _, u := range []string{ghURL, ngURL} {
		if err := harness.WaitHTTP(u); err != nil {
			return err
		}
	}

	var report strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&report, "## HTTPS: gatehouse vs nginx, testssl.sh, h2spec\n\n%s, %s, %d CPUs, %s; nginx %s; same ECDSA P-256 certificate, same 100-byte file.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), runtime.Version(), harness.NginxVersion())

	hs := map[string][]float64{}
	rq := map[string][]float64{}
	for r := range *rounds {
		for _, t := range []struct{ name, url string }{{"gatehouse", ghURL}, {"nginx", ngURL}} {
			h, err := h2load(t.url, "-n", "1000", "-c", "1000", "-t", "2")
			if err != nil {
				return err
			}
			q, err := h2load(t.url, "-D", strconv.Itoa(*duration), "-c", "32", "-m", "10", "-t", "2")
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "round %d %-9s handshakes/s %.0f  h2 req/s %.0f\n", r+1, t.name, h, q)
			hs[t.name] = append(hs[t.name], h)
			rq[t.name] = append(rq[t.name], q)
		}
	}
	gh1, ng1, gh2, ng2 := median(hs["gatehouse"]), median(hs["nginx"]), median(rq["gatehouse"]), median(rq["nginx"])
	fmt.Fprintf(&report, "| h2load (medians of %d rounds) | gatehouse | nginx | ratio |\n|---|---:|---:|---:|\n", *rounds)
	fmt.Fprintf(&report, "| new TLS handshakes/s (1000 connections, one request each) | %.0f | %.0f | **%.2fx** |\n", gh1, ng1, gh1/ng1)
	fmt.Fprintf(&report, "| HTTP/2 requests/s, 100-byte file (32 connections x 10 streams, %ds) | %.0f | %.0f | **%.2fx** |\n", *duration, gh2, ng2, gh2/ng2)
	fmt.Fprintf(&report, "\nTarget: at least 0.9x nginx on both.\n\n")

	if *runH2spec {
		summary, failures, err := h2spec(ghTLS)
		if err != nil {
			fmt.Fprintf(&report, "h2spec: could not run: %v\n\n", err)
		} else {
			fmt.Fprintf(&report, "### h2spec\n\n%s\n", summary)
			for _, f := range failures {
				fmt.Fprintf(&report, "- %s\n", f)
			}
			report.WriteString("\n")
		}
	}
	if *runTestssl {
		findings, err := testssl(ghTLS, caFile, dir)
		if err != nil {
			fmt.Fprintf(&report, "testssl.sh: could not run: %v\n", err)
		} else {
			fmt.Fprintf(&report, "### testssl.sh\n\nFindings of severity HIGH or CRITICAL: %d\n", len(findings))
			for _, f := range findings {
				fmt.Fprintf(&report, "- %s\n", f)
			}
		}
	}
	fmt.Print(report.String())
	if *out != "" {
		return os.WriteFile(*out, []byte(report.String()), 0o644)
	}
	return nil
}

var h2loadRate = regexp.MustCompile(`finished in [\d.]+m?s, ([\d.]+) req/s`)

// h2load runs h2load and returns its req/s, failing if any request failed.
func h2load(url string, args ...string) (float64, error) {
	out, err := exec.Command("h2load", append(args, url)...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("h2load %v: %w\n%s", args, err, out)
	}
	m := h2loadRate.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("h2load output without req/s:\n%s", out)
	}
	// With -D, requests in flight when time is up are counted as failed;
	// what matters is that every answer was a 2xx.
	if codes := regexp.MustCompile(`status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`).FindSubmatch(out); codes == nil ||
		string(codes[1]) != "0" || string(codes[2]) != "0" || string(codes[3]) != "0" {
		return 0, fmt.Errorf("h2load saw non-2xx answers from %s:\n%s", url, out)
	}
	if !slices.Contains(args, "-D") {
		if fail := regexp.MustCompile(`(\d+) failed`).FindSubmatch(out); fail != nil && string(fail[1]) != "0" {
			return 0, fmt.Errorf("h2load saw failures against %s:\n%s", url, out)
		}
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func h2spec(addr string) (string, []string, error) {
	host, port, _ := net.SplitHostPort(addr)
	bin, err := exec.LookPath("h2spec")
	if err != nil {
		if home, _ := os.UserHomeDir(); home != "" {
			if _, err := os.Stat(filepath.Join(home, "go/bin/h2spec")); err == nil {
				bin = filepath.Join(home, "go/bin/h2spec")
			}
		}
	}
	var cmd *exec.Cmd
	if bin != "" {
		cmd = exec.Command(bin, "-h", host, "-p", port, "-t", "-k")
	} else {
		cmd = exec.Command("go", "run", "github.com/summerwind/h2spec/cmd/h2spec@latest", "-h", host, "-p", port, "-t", "-k")
	}
	outb, _ := cmd.CombinedOutput()
	outs := string(outb)
	m := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`).FindString(outs)
	if m == "" {
		return "", nil, fmt.Errorf("no h2spec summary in:\n%s", outs)
	}
	var failures []string
	for _, line := range strings.Split(outs, "\n") {
		// h2spec prints each failure twice (the run and the summary).
		if i := strings.Index(line, "× "); i >= 0 {
			if f := strings.TrimSpace(line[i+len("× "):]); !slices.Contains(failures, f) {
				failures = append(failures, f)
			}
		}
	}
	return m, failures, nil
}

// testssl runs testssl.sh and returns its HIGH and CRITICAL findings.
func testssl(addr, caFile, dir string) ([]string, error) {
	bin := "testssl"
	if _, err := exec.LookPath(bin); err != nil {
		bin = "testssl.sh"
	}
	_, port, _ := net.SplitHostPort(addr)
	jf := filepath.Join(dir, "testssl.json")
	cmd := exec.Command(bin, "--quiet", "--color", "0", "--warnings", "off", "--add-ca", caFile, "--jsonfile", jf, "localhost:"+port)
	cmd.Stderr = os.Stderr
	if outb, err := cmd.Output(); err != nil {
		if _, statErr := os.Stat(jf); statErr != nil {
			return nil, fmt.Errorf("%s: %w\n%s", bin, err, outb)
		}
	}
	b, err := os.ReadFile(jf)
	if err != nil {
		return nil, err
	}
	var items []struct{ ID, Severity, Finding string }
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, err
	}
	var out []string
	for _, it := range items {
		if it.Severity == "HIGH" || it.Severity == "CRITICAL" {
			out = append(out, fmt.Sprintf("%s %s: %s", it.Severity, it.ID, it.Finding))
		}
	}
	return out, nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// writeCerts makes a CA and a certificate for localhost signed by it, so
// testssl.sh can check the chain with --add-ca.
func writeCerts(dir string) (ca, cert, key string, err error) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return
	}
	caCert, _ := x509.ParseCertificate(caDER)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	// 90 days, as Let's Encrypt issues: testssl.sh flags under 30 days left.
	leaf := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// Revocation pointers, as a public CA's certificates carry; without
		// them testssl.sh reports a HIGH finding about the certificate, not
		// about the server.
		OCSPServer: []string{"http://ocsp.gatehouse.invalid"}, CRLDistributionPoints: []string{"http://crl.gatehouse.invalid/ca.crl"}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &k.PublicKey, caKey)
	if err != nil {
		return
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(k)
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	// The chain file holds the leaf then the CA, as servers send it.
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	_ = os.WriteFile(cert, chain, 0o644)
	err = os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return
}
