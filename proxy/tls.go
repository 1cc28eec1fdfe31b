package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// certSource provides the certificates of one TLS mode.
type certSource interface {
	// getCertificate answers a handshake (tls.Config.GetCertificate).
	getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// nextProtos are ALPN protocols the source needs besides h2 and
	// http/1.1 (acme-tls/1 for TLS-ALPN-01 challenges).
	nextProtos() []string
	// httpChallenge answers an ACME HTTP-01 challenge request, if r is one.
	httpChallenge(w http.ResponseWriter, r *http.Request) bool
	// allowsHost reports whether an unlisted Host may be served because
	// the source holds (or may obtain) a certificate for it (on-demand).
	allowsHost(host string) bool
	// reload re-reads what the source reads from disk (SIGHUP).
	reload() error
	// close stops background work (renewals, file watching).
	close()
}

// aeadSuites are the TLS 1.2 cipher suites offered: forward secret and
// AEAD only. Go's defaults still include CBC suites, which checkers such as
// testssl.sh flag (LUCKY13 and friends). TLS 1.3 suites are not
// configurable in Go and are all AEAD.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// serverTLSConfig is the TLS policy: TLS 1.2 and 1.3, AEAD suites, HTTP/2
// and HTTP/1.1 by ALPN. Session tickets are on, and crypto/tls rotates
// their keys itself (a new key every 24 hours, each valid for 7 days)
// because SessionTicketKey is left unset.
func serverTLSConfig(src certSource) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   aeadSuites,
		NextProtos:     append([]string{"h2", "http/1.1"}, src.nextProtos()...),
		GetCertificate: src.getCertificate,
	}
}

// newCertSource builds the source for cfg.Mode. hosts are server.hosts.
func newCertSource(cfg TLSConfig, hosts []string, log *slog.Logger) (certSource, error) {
	switch cfg.Mode {
	case "manual":
		return newManualCerts(cfg.pairs(), log)
	case "self_signed":
		return newSelfSigned(cfg.Storage, hosts, log)
	case "auto":
		return newACME(cfg, hosts, log)
	}
	return nil, fmt.Errorf("tls.mode %q has no certificates", cfg.Mode)
}

// tlsListener does TLS handshakes off the accept loop (a slow handshake
// never delays the next client) and sorts the connections by ALPN:
// HTTP/2 ones go out through its h2 listener to the HTTP/2 server, HTTP/1.1
// ones through Accept to h1srv; both as *tls.Conn.
type tlsListener struct {
	net.Listener
	cfg     *tls.Config
	timeout time.Duration
	log     *slog.Logger

	conns chan net.Conn // HTTP/1.1 connections, for Accept
	h2    *h2Listener   // HTTP/2 connections, for internal/h2srv
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func newTLSListener(ln net.Listener, cfg *tls.Config, timeout time.Duration, log *slog.Logger) *tlsListener {
	l := &tlsListener{Listener: ln, cfg: cfg, timeout: timeout, log: log,
		conns: make(chan net.Conn), done: make(chan struct{})}
	l.h2 = &h2Listener{l: l, conns: make(chan net.Conn)}
	l.wg.Go(l.acceptLoop)
	return l
}

// h2Listener hands the HTTP/2 connections of a tlsListener to
// internal/h2srv; the HTTP/1.1 ones go to h1srv through the tlsListener itself.
// Closing either closes both.
type h2Listener struct {
	l     *tlsListener
	conns chan net.Conn
}

func (h *h2Listener) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.l.done:
		return nil, net.ErrClosed
	}
}

func (h *h2Listener) Close() error   { return h.l.Close() }
func (h *h2Listener) Addr() net.Addr { return h.l.Addr() }

func (l *tlsListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				l.Close()
				return
			}
			// EMFILE and the like: back off instead of spinning.
			l.log.Warn("accepting a TLS connection failed", "error", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-l.done:
				return
			}
			continue
		}
		l.wg.Go(func() { l.handshake(c) })
	}
}

func (l *tlsListener) handshake(c net.Conn) {
	tc := tls.Server(c, l.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err := tc.HandshakeContext(ctx)
	stop()
	if err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			_, _ = io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		}
		l.log.Debug("TLS handshake failed", "remote_addr", c.RemoteAddr().String(), "error", err)
		c.Close()
		return
	}
	var out net.Conn
	dst := l.conns
	switch tc.ConnectionState().NegotiatedProtocol {
	case "acme-tls/1":
		// A TLS-ALPN-01 validation: the handshake was the whole exchange.
		tc.Close()
		return
	case "h2":
		out, dst = tc, l.h2.conns
	default:
		out = tc
	}
	select {
	case dst <- out:
	case <-l.done:
		out.Close()
	}
}

func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO", "DELET", "PATCH":
		return true
	}
	return false
}

func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *tlsListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

// manualCerts serves certificates from files, re-read on reload and when
// they change on disk. A pair that fails to load leaves the old ones.
type manualCerts struct {
	pairs []CertPair
	log   *slog.Logger
	certs atomic.Pointer[[]tls.Certificate]
	mtime atomic.Int64 // newest mtime seen, to notice changes
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newManualCerts(pairs []CertPair, log *slog.Logger) (*manualCerts, error) {
	m := &manualCerts{pairs: pairs, log: log, stop: make(chan struct{})}
	if err := m.reload(); err != nil {
		return nil, err
	}
	m.wg.Go(m.watch)
	return m, nil
}

func loadPair(p CertPair) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		return c, fmt.Errorf("loading %s and %s: %w", p.CertFile, p.KeyFile, err)
	}
	if c.Leaf != nil && time.Now().After(c.Leaf.NotAfter) {
		return c, fmt.Errorf("%s expired on %s", p.CertFile, c.Leaf.NotAfter.Format(time.DateOnly))
	}
	return c, nil
}

func (m *manualCerts) newestMtime() int64 {
	var newest int64
	for _, p := range m.pairs {
		for _, f := range []string{p.CertFile, p.KeyFile} {
			if fi, err := os.Stat(f); err == nil && fi.ModTime().UnixNano() > newest {
				newest = fi.ModTime().UnixNano()
			}
		}
	}
	return newest
}

func (m *manualCerts) reload() error {
	mt := m.newestMtime()
	certs := make([]tls.Certificate, 0, len(m.pairs))
	for _, p := range m.pairs {
		c, err := loadPair(p)
		if err != nil {
			return err
		}
		certs = append(certs, c)
	}
	m.certs.Store(&certs)
	m.mtime.Store(mt)
	return nil
}

// watch re-reads the files when their mtime moves (a renewal by another
// tool), so no SIGHUP is needed.
func (m *manualCerts) watch() {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			if m.newestMtime() == m.mtime.Load() {
				continue
			}
			if err := m.reload(); err != nil {
				m.log.Error("certificate files changed but do not load; the old certificates stay", "error", err)
				m.mtime.Store(m.newestMtime())
				continue
			}
			m.log.Info("certificate files changed; reloaded")
		}
	}
}

func (m *manualCerts) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs := *m.certs.Load()
	for i := range certs {
		if hello.SupportsCertificate(&certs[i]) == nil {
			return &certs[i], nil
		}
	}
	// No name match: the first pair, as nginx's default server does.
	return &certs[0], nil
}

func (m *manualCerts) nextProtos() []string                                  { return nil }
func (m *manualCerts) httpChallenge(http.ResponseWriter, *http.Request) bool { return false }
func (m *manualCerts) allowsHost(string) bool                                { return false }
func (m *manualCerts) close()                                                { close(m.stop); m.wg.Wait() }

// newSelfSigned loads or makes a certificate for hosts, localhost and the
// loopback addresses, kept in storage so that browsers that were told to
// trust it keep trusting it across restarts.
func newSelfSigned(storage string, hosts []string, log *slog.Logger) (*manualCerts, error) {
	names := []string{"localhost"}
	for _, h := range hosts {
		p, ok := parseHostPattern(h)
		if ok && !p.matchAll && p.name != "" && !slices.Contains(names, p.name) {
			if p.subOnly || p.suffix {
				names = append(names, "*."+p.name)
			}
			if !p.subOnly {
				names = append(names, p.name)
			}
		}
	}
	dir := filepath.Join(storage, "self_signed")
	pair := CertPair{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	if c, err := loadPair(pair); err == nil && c.Leaf != nil && covers(c.Leaf, names) && time.Until(c.Leaf.NotAfter) > 7*24*time.Hour {
		return newManualCerts([]CertPair{pair}, log)
	}
	if err := writeSelfSigned(pair, names); err != nil {
		return nil, fmt.Errorf("making a self-signed certificate in %s: %w", dir, err)
	}
	log.Info("made a self-signed certificate; browsers will warn until you trust it", "names", names, "file", pair.CertFile)
	return newManualCerts([]CertPair{pair}, log)
}

func covers(leaf *x509.Certificate, names []string) bool {
	for _, n := range names {
		if n != "localhost" && strings.HasPrefix(n, "*.") {
			if !slices.Contains(leaf.DNSNames, n) {
				return false
			}
			continue
		}
		if leaf.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

func writeSelfSigned(p CertPair, names []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[len(names)-1], Organization: []string{"gatehouse self-signed"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.CertFile), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(p.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(p.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
