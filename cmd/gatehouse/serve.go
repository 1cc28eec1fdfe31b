package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/compress"
	"github.com/gatehouse/gatehouse/internal/conf"
	"github.com/gatehouse/gatehouse/proxy"
	"github.com/gatehouse/gatehouse/ratelimit"
	"github.com/gatehouse/gatehouse/static"
	"github.com/gatehouse/gatehouse/workers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// gate is a running gatehouse: the front and the parts wired behind it.
// Only the goroutine running serve touches it after start-up (reloads run
// there too), so it needs no lock beyond what /status reads.
type gate struct {
	path   string
	log    *slog.Logger
	access *slog.Logger
	level  *slog.LevelVar
	reg    *prometheus.Registry
	gather *gatherers
	front  *proxy.Server

	cfg     *fileConfig
	pool    *workers.Pool
	limiter *ratelimit.Limiter
	files   *static.Server

	mu         sync.Mutex // guards the reload record below, read by /status
	reloads    int
	lastReload time.Time
	lastError  string
}

func serve(path string, stderr io.Writer) int {
	cfg, err := loadConfig(path)
	if err != nil {
		printConfigError(stderr, path, err)
		return 2
	}
	g := &gate{path: path, level: new(slog.LevelVar), cfg: cfg}
	g.log, g.access = newLoggers(cfg.Log, stderr, g.level)
	setRedisLogger(g.log)
	g.log.Info("starting gatehouse", "version", versionString(), "config", path)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// The parts behind the front (worker processes, health checks) must
	// outlive the front's drain, so they get their own context, ended in
	// stopParts after the front has finished.
	partsCtx, cancelParts := context.WithCancel(context.Background())
	defer cancelParts()

	if os.Getpid() == 1 {
		// In a container, orphans of the workers are re-parented to us.
		go workers.ReapOrphans(partsCtx, g.log)
	}

	if err := g.start(partsCtx); err != nil {
		g.log.Error("cannot start", "error", err)
		g.stopParts()
		return 1
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	done := make(chan error, 1)
	go func() { done <- g.front.Serve(ctx) }()
	for {
		select {
		case <-hup:
			g.reload(partsCtx)
		case err := <-done:
			g.stopParts()
			if err != nil {
				g.log.Error("stopped with an error", "error", err)
				return 1
			}
			g.log.Info("stopped")
			return 0
		}
	}
}

func (g *gate) start(ctx context.Context) error {
	g.reg = prometheus.NewRegistry()
	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g.gather = newGatherers(g.reg)
	cfg := g.cfg
	files, err := g.newFiles(cfg)
	if err != nil {
		return err
	}
	g.files = files
	if cfg.App != nil {
		if g.pool, err = g.newPool(ctx, cfg.App); err != nil {
			return err
		}
	}
	if cfg.RateLimit != nil {
		if g.limiter, err = g.newLimiter(cfg.RateLimit); err != nil {
			return err
		}
	}
	front, err := proxy.New(g.options(cfg), g.reg)
	if err != nil {
		return err
	}
	g.front = front
	return front.Listen()
}

// options builds the front's options from cfg and the running parts.
func (g *gate) options(cfg *fileConfig) proxy.Options {
	o := proxy.Options{
		Config:    cfg.Server,
		TLS:       cfg.TLS,
		Admin:     cfg.Admin,
		Logger:    g.log,
		AccessLog: g.access,
		Status:    g.status,
		Metrics:   g.gather,
	}
	if g.files != nil {
		o.Static = g.files
	}
	if g.pool != nil {
		o.Pool = g.pool
	}
	if g.limiter != nil {
		o.Limit = g.limiter.Wrap
		o.LimitStatic = cfg.RateLimit.Static
		o.Prefetch = g.limiter.Prefetch
	}
	if cfg.Compression != nil {
		o.Encode = compress.Middleware(*cfg.Compression)
	}
	return o
}

func (g *gate) status() map[string]any {
	g.mu.Lock()
	st := map[string]any{
		"version": versionString(),
		"config": map[string]any{
			"file":        g.path,
			"reloads":     g.reloads,
			"last_reload": g.lastReload,
			"last_error":  g.lastError,
		},
	}
	g.mu.Unlock()
	if g.pool != nil {
		st["app"] = g.pool.Status()
	}
	return st
}

// newPool builds and starts the app pool; one that fails to start is
// closed again, so no worker is left behind.
func (g *gate) newPool(ctx context.Context, cfg *workers.Config) (*workers.Pool, error) {
	p, err := workers.New(*cfg, workers.Options{Logger: g.log, Registerer: g.reg})
	if err != nil {
		return nil, fmt.Errorf("building the app pool: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		_ = p.Close(ctx)
		return nil, fmt.Errorf("starting the app pool: %w", err)
	}
	return p, nil
}

// newLimiter builds a rate limiter with a registry of its own, so one
// built by a reload never collides with the metrics of the one before.
func (g *gate) newLimiter(cfg *ratelimit.Config) (*ratelimit.Limiter, error) {
	l, err := ratelimit.New(*cfg, ratelimit.Options{Logger: g.log, Registerer: g.gather.fresh("ratelimit")})
	if err != nil {
		return nil, fmt.Errorf("building the rate limiter: %w", err)
	}
	return l, nil
}

// newFiles opens the static mounts of cfg, or returns nil when there are
// none.
func (g *gate) newFiles(cfg *fileConfig) (*static.Server, error) {
	if len(cfg.Static) == 0 {
		return nil, nil
	}
	s, err := static.New(cfg.Static, static.Options{Logger: g.log, Registerer: g.gather.fresh("static"), Cache: cfg.StaticCache})
	if err != nil {
		return nil, fmt.Errorf("opening static mounts: %w", err)
	}
	return s, nil
}

// reload re-reads the file and applies it part by part. A file with any
// problem changes nothing. The pool rolls its workers itself; if the new
// app cannot start, the old workers keep serving and the error is logged.
func (g *gate) reload(ctx context.Context) {
	start := time.Now()
	g.log.Info("reloading configuration", "config", g.path)
	cfg, err := loadConfig(g.path)
	if err != nil {
		g.recordReload(err)
		for _, e := range conf.Flatten(err) {
			g.log.Error("configuration not applied; the running one stays", "config", g.path, "problem", e.Error())
		}
		return
	}
	if !reflect.DeepEqual(cfg.Log, g.cfg.Log) {
		g.log.Warn("log format and access changes take effect after a restart; level applied now")
		g.level.Set(levels[cfg.Log.Level])
	}
	var errs []error
	if !reflect.DeepEqual(cfg.Static, g.cfg.Static) || cfg.StaticCache != g.cfg.StaticCache {
		files, err := g.newFiles(cfg)
		if err != nil {
			errs = append(errs, err)
			cfg.Static, cfg.StaticCache = g.cfg.Static, g.cfg.StaticCache
		} else {
			if old := g.files; old != nil {
				// Requests that started on the old mounts open their file
				// within moments; an open file outlives its root's close.
				time.AfterFunc(10*time.Second, func() { _ = old.Close() })
			}
			g.files = files
		}
	}
	switch {
	case cfg.App == nil && g.pool != nil:
		old := g.pool
		g.pool = nil
		defer func() { _ = old.Close(ctx) }()
	case cfg.App != nil && g.pool == nil:
		p, err := g.newPool(ctx, cfg.App)
		if err != nil {
			errs = append(errs, err)
			cfg.App = nil
		} else {
			g.pool = p
		}
	case cfg.App != nil && (!reflect.DeepEqual(*cfg.App, *g.cfg.App) || cfg.App.Kind() != workers.KindUpstream):
		// A SIGHUP after a deploy (new code, same file) must roll the
		// workers too, as gunicorn's HUP does: process pools always roll.
		if err := g.pool.Reload(ctx, *cfg.App); err != nil {
			errs = append(errs, fmt.Errorf("reloading the app (the old workers keep serving): %w", err))
			cfg.App = g.cfg.App
		}
	}
	switch {
	case cfg.RateLimit == nil && g.limiter != nil:
		old := g.limiter
		g.limiter = nil
		defer old.Close()
	case cfg.RateLimit != nil && g.limiter == nil:
		l, err := g.newLimiter(cfg.RateLimit)
		if err != nil {
			errs = append(errs, err)
			cfg.RateLimit = nil
		} else {
			g.limiter = l
		}
	case cfg.RateLimit != nil:
		if err := g.limiter.Reload(*cfg.RateLimit); err != nil {
			errs = append(errs, fmt.Errorf("reloading rate limits: %w", err))
		}
	}
	if err := g.front.Apply(g.options(cfg)); err != nil {
		errs = append(errs, err)
	} else {
		g.cfg = cfg
	}
	err = errors.Join(errs...)
	g.recordReload(err)
	if err != nil {
		g.log.Error("reload partly failed", "error", err)
		return
	}
	g.log.Info("configuration reloaded", "duration", time.Since(start).String())
}

func (g *gate) recordReload(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reloads++
	g.lastReload = time.Now()
	g.lastError = ""
	if err != nil {
		g.lastError = err.Error()
	}
}

// stopParts stops what sits behind the front, after the front has drained.
func (g *gate) stopParts() {
	if g.pool != nil {
		timeout := g.cfg.App.GracefulTimeout.D() + 5*time.Second
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		if err := g.pool.Close(ctx); err != nil {
			g.log.Warn("app pool did not stop cleanly", "error", err)
		}
		cancel()
	}
	if g.limiter != nil {
		_ = g.limiter.Close()
	}
	if g.files != nil {
		_ = g.files.Close()
	}
}
