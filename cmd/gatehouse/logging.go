package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/gatehouse/gatehouse/internal/conf"
)

// logConfig is the `log:` section.
type logConfig struct {
	// Format is json (one object per line, for log shippers) or text
	// (key=value, for terminals). Default json.
	Format string `yaml:"format"`
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Access writes one line per request. Default true.
	Access *bool `yaml:"access"`
}

func (c *logConfig) Defaults() {
	if c.Format == "" {
		c.Format = "json"
	}
	if c.Level == "" {
		c.Level = "info"
	}
	if c.Access == nil {
		t := true
		c.Access = &t
	}
}

func (c *logConfig) Validate() error {
	var errs conf.Errors
	if c.Format != "json" && c.Format != "text" {
		errs.Add("format", "must be json or text, got %q", c.Format)
	}
	if _, ok := levels[strings.ToLower(c.Level)]; !ok {
		errs.Add("level", "must be debug, info, warn or error, got %q", c.Level)
	}
	return errs.Err()
}

var levels = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "warning": slog.LevelWarn, "error": slog.LevelError}

// newLoggers returns the operational logger and the access logger (nil
// when access logging is off). Both write to w; level is shared so that a
// reload can change it.
func newLoggers(c logConfig, w io.Writer, level *slog.LevelVar) (*slog.Logger, *slog.Logger) {
	level.Set(levels[strings.ToLower(c.Level)])
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if c.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	log := slog.New(h)
	var access *slog.Logger
	if *c.Access {
		access = log.With("component", "access")
	}
	return log, access
}
