package proxy

// This file is the only one that imports certmagic.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// acmeCerts obtains and renews certificates from an ACME CA with
// certmagic: HTTP-01 answered on the plain listener (httpChallenge),
// TLS-ALPN-01 in the handshake (acme-tls/1), OCSP stapled, renewals in the
// background. A CA that refuses is logged with its reason and retried with
// backoff by certmagic while gatehouse keeps serving.
type acmeCerts struct {
	cache    *certmagic.Cache
	magic    *certmagic.Config
	issuer   *certmagic.ACMEIssuer
	tlsConf  *tls.Config
	allow    hostAllow // on-demand allow list
	ask      bool      // on-demand names decided by the ask URL
	cancel   context.CancelFunc
	managing []string
}

func newACME(cfg TLSConfig, hosts []string, log *slog.Logger) (*acmeCerts, error) {
	zl := zap.New(&slogCore{log: log.With("component", "acme")})
	storage := &certmagic.FileStorage{Path: cfg.Storage}
	a := &acmeCerts{}
	var magic *certmagic.Config
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: cfg.RenewCheckInterval.D(),
		Logger:             zl,
	})
	magic = certmagic.New(a.cache, certmagic.Config{
		Storage:            storage,
		RenewalWindowRatio: cfg.RenewalWindow,
		Logger:             zl,
	})
	tmpl := certmagic.ACMEIssuer{
		CA:     cfg.CA,
		Email:  cfg.Email,
		Agreed: true,
		Logger: zl,
	}
	if len(cfg.Challenges) > 0 {
		tmpl.DisableHTTPChallenge = !slices.Contains(cfg.Challenges, "http-01")
		tmpl.DisableTLSALPNChallenge = !slices.Contains(cfg.Challenges, "tls-alpn-01")
	}
	if tmpl.CA == "" {
		tmpl.CA = certmagic.LetsEncryptProductionCA
	}
	if cfg.CARoot != "" {
		pem, err := os.ReadFile(cfg.CARoot)
		if err != nil {
			return nil, fmt.Errorf("reading tls.ca_root: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_root %s holds no PEM certificate", cfg.CARoot)
		}
		tmpl.TrustedRoots = pool
	}
	a.issuer = certmagic.NewACMEIssuer(magic, tmpl)
	magic.Issuers = []certmagic.Issuer{a.issuer}
	if od := cfg.OnDemand; od != nil {
		a.allow = parseHosts(od.Allow)
		a.ask = od.Ask != ""
		magic.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: a.decide(od, log)}
	}
	a.magic = magic

	for _, h := range hosts {
		p, ok := parseHostPattern(h)
		if ok && !p.matchAll && !p.subOnly && p.name != "" {
			a.managing = append(a.managing, p.name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	if len(a.managing) > 0 {
		// Async: a CA that is down or refuses must not stop gatehouse from
		// serving; certmagic logs and retries with backoff.
		if err := magic.ManageAsync(ctx, a.managing); err != nil {
			cancel()
			a.cache.Stop()
			return nil, fmt.Errorf("managing certificates for %v: %w", a.managing, err)
		}
	}
	a.tlsConf = magic.TLSConfig()
	return a, nil
}

// decide approves on-demand names: on the allow list, or approved by the
// ask URL. Anything else is refused, so nobody can make gatehouse order
// certificates for names of their choosing.
func (a *acmeCerts) decide(od *OnDemandConfig, log *slog.Logger) func(context.Context, string) error {
	client := &http.Client{Timeout: 10 * time.Second}
	return func(ctx context.Context, name string) error {
		name = strings.ToLower(name)
		if a.allow.allows(name) && len(a.allow) > 0 {
			return nil
		}
		if od.Ask == "" {
			return fmt.Errorf("%s is not in tls.on_demand.allow", name)
		}
		u, _ := url.Parse(od.Ask)
		q := u.Query()
		q.Set("domain", name)
		u.RawQuery = q.Encode()
		req, _ := http.NewRequestWithContext(ctx, "GET", u.String(), nil)
		res, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("asking %s about %s: %w", od.Ask, name, err)
		}
		res.Body.Close()
		if res.StatusCode < 200 || res.StatusCode > 299 {
			log.Info("on-demand certificate refused by the ask URL", "name", name, "status", res.StatusCode)
			return fmt.Errorf("%s refused %s with %d", od.Ask, name, res.StatusCode)
		}
		return nil
	}
}

func (a *acmeCerts) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.tlsConf.GetCertificate(hello)
}

func (a *acmeCerts) nextProtos() []string { return []string{"acme-tls/1"} }

func (a *acmeCerts) httpChallenge(w http.ResponseWriter, r *http.Request) bool {
	return a.issuer.HandleHTTPChallenge(w, r)
}

func (a *acmeCerts) allowsHost(host string) bool {
	return len(a.allow) > 0 && a.allow.allows(host)
}

func (a *acmeCerts) reload() error { return nil }

func (a *acmeCerts) close() {
	a.cancel()
	a.cache.Stop()
}

// slogCore sends certmagic's zap logs to gatehouse's slog logger.
type slogCore struct {
	log    *slog.Logger
	fields []zapcore.Field
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.log.Enabled(context.Background(), zapToSlog(l))
}

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, fields: append(append([]zapcore.Field(nil), c.fields...), fs...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field(nil), c.fields...), fs...) {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields)+1)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	c.log.LogAttrs(context.Background(), zapToSlog(e.Level), e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

func zapToSlog(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l >= zapcore.WarnLevel:
		return slog.LevelWarn
	case l >= zapcore.InfoLevel:
		return slog.LevelInfo
	}
	return slog.LevelDebug
}
