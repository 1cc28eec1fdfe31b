package compress

import "strings"

// Compressible reports whether a body of the given media type (a
// Content-Type value; parameters are ignored) shrinks when compressed:
// text, JavaScript, JSON, XML, SVG, WASM, uncompressed fonts and icons.
// Images, audio, video, archives and woff2 are already compressed, and
// compressing them again costs CPU for nothing.
func Compressible(contentType string) bool {
	mt, _ := cut(contentType, ';')
	mt = strings.ToLower(trim(mt))
	if strings.HasPrefix(mt, "text/") {
		// Server-sent events are left alone: some clients and proxies
		// buffer encoded streams, which delays events.
		return mt != "text/event-stream"
	}
	switch {
	case strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	switch mt {
	case "application/javascript", "application/x-javascript", "application/ecmascript",
		"application/json", "application/manifest+json", "application/ld+json",
		"application/xml", "application/xhtml+xml", "application/rss+xml", "application/atom+xml",
		"application/wasm", "application/graphql-response+json",
		"application/x-ndjson", "application/geo+json", "application/vnd.api+json",
		"application/x-font-ttf", "application/vnd.ms-fontobject",
		"font/ttf", "font/otf", "font/collection", "font/sfnt",
		"image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon", "image/bmp",
		"application/x-yaml", "application/yaml", "application/toml",
		"application/x-sh":
		return true
	}
	return false
}
