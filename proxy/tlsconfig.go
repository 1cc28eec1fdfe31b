package proxy

import (
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/internal/conf"
)

// TLSConfig is the `tls:` section: where certificates come from, and the
// HTTPS policy (redirects, HSTS).
type TLSConfig struct {
	// Mode is auto (certificates from an ACME CA for server.hosts),
	// manual (cert_file/key_file or certificates), self_signed (a local
	// certificate for development) or off. Default: auto when
	// server.listen_tls is set, off otherwise.
	Mode string `yaml:"mode"`
	// Email is the ACME account contact (auto): the CA writes here about
	// expiring certificates and policy changes. Recommended.
	Email string `yaml:"email"`
	// CA is the ACME directory URL (auto). Default Let's Encrypt.
	CA string `yaml:"ca"`
	// CARoot is a PEM file of roots to trust when talking to the ACME CA,
	// for a private CA (auto). Default: the system roots.
	CARoot string `yaml:"ca_root"`
	// Storage is where certificates, keys and ACME accounts are kept.
	// Default ./data/certs. Keep it on a volume: it is what spares the CA
	// a new order at every restart.
	Storage string `yaml:"storage"`
	// CertFile and KeyFile are one PEM certificate chain and key (manual).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Certificates are more pairs (manual); the one whose names match the
	// client's SNI is chosen. Files are re-read on SIGHUP and when they
	// change on disk; a bad pair is refused and the old one kept.
	Certificates []CertPair `yaml:"certificates"`
	// HSTS is the Strict-Transport-Security max-age sent on HTTPS
	// responses, e.g. 365d. Default 0: no HSTS (turn it on once HTTPS
	// works: browsers remember it).
	HSTS conf.Duration `yaml:"hsts"`
	// HSTSIncludeSubdomains adds includeSubDomains. Default false.
	HSTSIncludeSubdomains bool `yaml:"hsts_include_subdomains"`
	// HSTSPreload adds preload (for the browsers' preload list). Default
	// false.
	HSTSPreload bool `yaml:"hsts_preload"`
	// RedirectHTTP answers plain HTTP on server.listen with 308 to HTTPS,
	// path and query kept (ACME HTTP-01 challenges excepted). Default true.
	RedirectHTTP *bool `yaml:"redirect_http"`
	// RenewalWindow is the part of a certificate's lifetime, counted from
	// its end, in which it is renewed (auto). Default 0.33.
	RenewalWindow float64 `yaml:"renewal_window"`
	// RenewCheckInterval is how often certificates are checked for
	// renewal (auto). Default 10m.
	RenewCheckInterval conf.Duration `yaml:"renew_check_interval"`
	// Challenges are the ACME challenge types offered (auto): http-01
	// (answered on server.listen, which must be port 80 from the CA's
	// side) and tls-alpn-01 (answered on server.listen_tls, port 443).
	// Default both.
	Challenges []string `yaml:"challenges"`
	// OnDemand obtains certificates at the first handshake for names not
	// known in advance (custom domains of a SaaS), but only for names the
	// allow list or the ask URL approves. Default off.
	OnDemand *OnDemandConfig `yaml:"on_demand"`
}

// CertPair is a certificate chain file and its key file, both PEM.
type CertPair struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// OnDemandConfig decides which unknown names may get a certificate.
type OnDemandConfig struct {
	// Allow lists names (or *.suffix patterns) that may get one.
	Allow []string `yaml:"allow"`
	// Ask is a URL asked with GET ?domain=NAME; a 2xx answer allows it.
	Ask string `yaml:"ask"`
}

// Defaults fills zero fields.
func (c *TLSConfig) Defaults() {
	if c.Mode == "" {
		c.Mode = "off"
	}
	if c.Storage == "" {
		c.Storage = "./data/certs"
	}
	if c.RedirectHTTP == nil {
		t := true
		c.RedirectHTTP = &t
	}
	if c.RenewalWindow == 0 {
		c.RenewalWindow = 1.0 / 3
	}
	setDur(&c.RenewCheckInterval, 10*60e9)
}

// On reports whether gatehouse serves HTTPS.
func (c *TLSConfig) On() bool { return c.Mode != "off" && c.Mode != "" }

// pairs returns every manual certificate pair.
func (c *TLSConfig) pairs() []CertPair {
	out := append([]CertPair(nil), c.Certificates...)
	if c.CertFile != "" || c.KeyFile != "" {
		out = append([]CertPair{{c.CertFile, c.KeyFile}}, out...)
	}
	return out
}

// Validate reports problems relative to `tls`.
func (c *TLSConfig) Validate() error {
	var errs conf.Errors
	switch c.Mode {
	case "off", "self_signed":
	case "auto":
		if c.CA != "" {
			if u, err := url.Parse(c.CA); err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
				errs.Add("ca", "want the ACME directory URL, such as https://acme-v02.api.letsencrypt.org/directory")
			}
		}
		if c.CARoot != "" {
			if _, err := os.Stat(c.CARoot); err != nil {
				errs.Add("ca_root", "cannot read %s: %v", c.CARoot, err)
			}
		}
		if c.Email != "" && !strings.Contains(c.Email, "@") {
			errs.Add("email", "%q is not an email address", c.Email)
		}
	case "manual":
		ps := c.pairs()
		if len(ps) == 0 {
			errs.Add("cert_file", "manual mode needs cert_file and key_file (or certificates)")
		}
		for i, p := range ps {
			at := "certificates[" + strconv.Itoa(i) + "]"
			if c.CertFile != "" && i == 0 {
				at = ""
			}
			if p.CertFile == "" || p.KeyFile == "" {
				errs.Add(conf.Join(at, "cert_file"), "a certificate needs both cert_file and key_file")
				continue
			}
			if _, err := loadPair(p); err != nil {
				errs.Add(conf.Join(at, "cert_file"), "%v", err)
			}
		}
	default:
		errs.Add("mode", "must be auto, manual, self_signed or off, got %q", c.Mode)
	}
	for i, ch := range c.Challenges {
		if ch != "http-01" && ch != "tls-alpn-01" {
			errs.Add("challenges["+strconv.Itoa(i)+"]", "must be http-01 or tls-alpn-01, got %q", ch)
		}
	}
	if c.Challenges != nil && len(c.Challenges) == 0 {
		errs.Add("challenges", "must offer at least one of http-01 and tls-alpn-01")
	}
	if c.RenewalWindow <= 0 || c.RenewalWindow >= 1 {
		errs.Add("renewal_window", "must be between 0 and 1 (a fraction of the lifetime), got %v", c.RenewalWindow)
	}
	if c.OnDemand != nil {
		if c.Mode != "auto" {
			errs.Add("on_demand", "needs mode auto")
		}
		if len(c.OnDemand.Allow) == 0 && c.OnDemand.Ask == "" {
			errs.Add("on_demand", "needs an allow list or an ask URL: without one anybody could make gatehouse request certificates for any name")
		}
		if c.OnDemand.Ask != "" {
			if u, err := url.Parse(c.OnDemand.Ask); err != nil || u.Host == "" {
				errs.Add("on_demand.ask", "%q is not a URL", c.OnDemand.Ask)
			}
		}
	}
	return errs.Err()
}

// hstsValue is the Strict-Transport-Security header, or "".
func (c *TLSConfig) hstsValue() string {
	if c.HSTS <= 0 {
		return ""
	}
	v := "max-age=" + strconv.FormatInt(int64(c.HSTS.D().Seconds()), 10)
	if c.HSTSIncludeSubdomains {
		v += "; includeSubDomains"
	}
	if c.HSTSPreload {
		v += "; preload"
	}
	return v
}
