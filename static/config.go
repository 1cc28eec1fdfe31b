package static

import (
	"path"
	"strconv"
	"strings"

	"github.com/gatehouse/gatehouse/internal/conf"
)

// Config is one mount, an item of the YAML list `static:`.
type Config struct {
	// URL is the path prefix served from Root, e.g. /static/. Required; it
	// starts and ends with "/".
	URL string `yaml:"url"`
	// Root is the folder the files come from. Required. No request ever
	// reaches a file outside it, symlinks included.
	Root string `yaml:"root"`
	// Kind is static (the site's own collected files) or media (files users
	// uploaded). Default: media when URL starts with /media/ or the mount is
	// internal, static otherwise. It sets the defaults of Immutable and
	// ScriptTypes.
	Kind string `yaml:"kind"`
	// Immutable decides which files get "Cache-Control: public,
	// max-age=31536000, immutable": auto means fingerprinted names (Django's
	// ManifestStaticFilesStorage, app.3f2a1b9c0d4e.css) and every file named
	// in a staticfiles.json manifest in Root; always means every file; never
	// means none. Default auto for static mounts, never for media.
	Immutable string `yaml:"immutable"`
	// MaxAge is the Cache-Control max-age of the files that are not
	// immutable; they are revalidated with ETag and Last-Modified after it.
	// Default 1h; 0s sends "no-cache" (revalidate every time).
	MaxAge *conf.Duration `yaml:"max_age"`
	// Index is the file served for a request naming a folder (e.g.
	// index.html). Default none: a folder is 404. There is never a listing.
	Index string `yaml:"index"`
	// Internal makes the mount reachable only through an app's
	// X-Accel-Redirect (or X-Sendfile) answer, like nginx's `internal;`:
	// the protected-media pattern. Default false.
	Internal bool `yaml:"internal"`
	// ScriptTypes is how files whose type could run script in the site's
	// origin (HTML, SVG, XML) are served: sandbox (with
	// "Content-Security-Policy: sandbox"), attachment (with
	// "Content-Disposition: attachment") or inline (as they are). Default
	// sandbox for media mounts, inline for static ones.
	ScriptTypes string `yaml:"script_types"`
	// Compress compresses compressible files (text, JS, JSON, SVG, WASM,
	// fonts) once per file and coding and keeps the result in the cache.
	// Default true.
	Compress *bool `yaml:"compress"`
	// Precompressed serves .br, .zst and .gz siblings written ahead of time
	// (`gatehouse compress DIR`) when they are newer than the file. Default
	// true.
	Precompressed *bool `yaml:"precompressed"`
}

// Kinds, Immutable and ScriptTypes values.
const (
	KindStatic = "static"
	KindMedia  = "media"

	ImmutableAuto   = "auto"
	ImmutableAlways = "always"
	ImmutableNever  = "never"

	ScriptSandbox    = "sandbox"
	ScriptAttachment = "attachment"
	ScriptInline     = "inline"
)

// DefaultMaxAge is the max-age of files that are not immutable.
const DefaultMaxAge = conf.Duration(3600e9)

// Defaults fills zero fields with the documented defaults.
func (c *Config) Defaults() {
	if c.Kind == "" {
		c.Kind = KindStatic
		if c.Internal || strings.HasPrefix(c.URL, "/media/") {
			c.Kind = KindMedia
		}
	}
	if c.Immutable == "" {
		c.Immutable = ImmutableAuto
		if c.Kind == KindMedia {
			c.Immutable = ImmutableNever
		}
	}
	if c.MaxAge == nil {
		d := DefaultMaxAge
		c.MaxAge = &d
	}
	if c.ScriptTypes == "" {
		c.ScriptTypes = ScriptInline
		if c.Kind == KindMedia {
			c.ScriptTypes = ScriptSandbox
		}
	}
	if c.Compress == nil {
		t := true
		c.Compress = &t
	}
	if c.Precompressed == nil {
		t := true
		c.Precompressed = &t
	}
}

// Validate checks one mount; paths are relative to the item.
func (c *Config) Validate() error {
	var errs conf.Errors
	switch {
	case c.URL == "":
		errs.Add("url", "is required, e.g. /static/")
	case !strings.HasPrefix(c.URL, "/") || !strings.HasSuffix(c.URL, "/"):
		errs.Add("url", "%q must start and end with /, e.g. /static/", c.URL)
	case path.Clean(c.URL)+"/" != c.URL && c.URL != "/":
		errs.Add("url", "%q is not a clean path (no //, . or .. parts)", c.URL)
	case strings.ContainsAny(c.URL, "%?#\\"):
		errs.Add("url", "%q must be a plain path without %%, ?, # or backslashes", c.URL)
	}
	if c.Root == "" {
		errs.Add("root", "is required: the folder to serve")
	}
	oneOf := func(key, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		errs.Add(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	oneOf("kind", c.Kind, KindStatic, KindMedia)
	oneOf("immutable", c.Immutable, ImmutableAuto, ImmutableAlways, ImmutableNever)
	oneOf("script_types", c.ScriptTypes, ScriptSandbox, ScriptAttachment, ScriptInline)
	if c.Index != "" && (strings.ContainsAny(c.Index, "/\\\x00") || strings.HasPrefix(c.Index, ".")) {
		errs.Add("index", "%q must be a plain file name such as index.html", c.Index)
	}
	return errs.Err()
}

// ValidateMounts checks the whole `static:` list: each item, and that no
// two mounts share a URL. Nested prefixes (/static/ and /static/admin/) are
// allowed: the longest one wins. Paths are relative to the list ("[1].url").
func ValidateMounts(mounts []Config) error {
	var errs conf.Errors
	seen := map[string]int{}
	for i, m := range mounts {
		item := "[" + strconv.Itoa(i) + "]"
		errs.AddErr(item, m.Validate())
		if j, dup := seen[m.URL]; dup && m.URL != "" {
			errs.Add(item+".url", "%q is also the url of static[%d]", m.URL, j)
		}
		seen[m.URL] = i
	}
	return errs.Err()
}
