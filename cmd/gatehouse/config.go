package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/gatehouse/gatehouse/internal/compress"
	"github.com/gatehouse/gatehouse/internal/conf"
	"github.com/gatehouse/gatehouse/proxy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/static"
	"github.com/gatehouse/gatehouse/workers"
)

// fileConfig is the whole YAML file. Each section's type belongs to the
// package that uses it; a section that is absent is off (nil).
type fileConfig struct {
	Server proxy.Config    `yaml:"server"`
	TLS    proxy.TLSConfig `yaml:"tls"`
	Static []static.Config `yaml:"static"`
	// StaticCache tunes the open-file cache shared by the static mounts.
	StaticCache static.CacheConfig `yaml:"static_cache"`
	App         *workers.Config    `yaml:"app"`
	RateLimit   *ratelimit.Config  `yaml:"ratelimit"`
	Admin       *proxy.AdminConfig `yaml:"admin"`
	Log         logConfig          `yaml:"log"`
	// Compression of app responses (server.compression in spirit; a
	// section of its own so that `server` stays about connections).
	Compression *compress.Config `yaml:"compression"`
}

// loadConfig reads, expands, decodes, fills defaults and validates the file
// at path. Every problem found is returned, each naming its key and line.
func loadConfig(path string) (*fileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return parseConfig(path, data, os.LookupEnv)
}

func parseConfig(name string, data []byte, lookup func(string) (string, bool)) (*fileConfig, error) {
	f, err := conf.Parse(name, data, lookup)
	if err != nil {
		return nil, err
	}
	var cfg fileConfig
	errs := f.Decode("", &cfg)

	cfg.Server.Defaults()
	errs.AddErr("server", cfg.Server.Validate())
	if cfg.TLS.Mode == "" && len(cfg.Server.ListenTLS) > 0 {
		cfg.TLS.Mode = "auto"
	}
	cfg.TLS.Defaults()
	errs.AddErr("tls", cfg.TLS.Validate())
	if cfg.TLS.On() && len(cfg.Server.ListenTLS) == 0 {
		errs.Add("server.listen_tls", "tls.mode is %s but there is no HTTPS listener: set listen_tls (e.g. \":8443\")", cfg.TLS.Mode)
	}
	if !cfg.TLS.On() && len(cfg.Server.ListenTLS) > 0 {
		errs.Add("tls.mode", "server.listen_tls is set but tls.mode is off")
	}
	if cfg.TLS.Mode == "auto" && cfg.TLS.OnDemand == nil && !hasCertName(cfg.Server.Hosts) {
		errs.Add("server.hosts", "tls.mode auto needs the names to get certificates for: list them in server.hosts")
	}
	for i := range cfg.Static {
		cfg.Static[i].Defaults()
		errs.AddErr(fmt.Sprintf("static[%d]", i), cfg.Static[i].Validate())
	}
	if len(errs) == 0 {
		errs.AddErr("static", static.ValidateMounts(cfg.Static))
	}
	cfg.StaticCache.Defaults()
	errs.AddErr("static_cache", cfg.StaticCache.Validate())
	if cfg.App != nil {
		cfg.App.Defaults()
		errs.AddErr("app", cfg.App.Validate())
	}
	if cfg.RateLimit != nil {
		cfg.RateLimit.Defaults()
		errs.AddErr("ratelimit", cfg.RateLimit.Validate())
	}
	if cfg.Admin != nil {
		cfg.Admin.Defaults()
		errs.AddErr("admin", cfg.Admin.Validate())
	}
	if cfg.Compression != nil {
		cfg.Compression.Defaults()
		errs.AddErr("compression", cfg.Compression.Validate())
	}
	cfg.Log.Defaults()
	errs.AddErr("log", cfg.Log.Validate())
	if len(errs) > 0 {
		f.Locate(errs)
		return nil, errs
	}
	return &cfg, nil
}

// hasCertName reports whether hosts names at least one host a certificate
// can be ordered for (not "*", not "*.example.com").
func hasCertName(hosts []string) bool {
	for _, h := range hosts {
		if h != "*" && !strings.HasPrefix(h, "*.") {
			return true
		}
	}
	return false
}
