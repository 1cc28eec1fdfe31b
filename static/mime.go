package static

import (
	"path"
	"strings"
)

// types maps lower-case extensions to Content-Type values. It is our own
// table, not mime.TypeByExtension, whose answers depend on the machine's
// /etc/mime.types: the same file must get the same type everywhere. Text
// types carry charset=utf-8 because Django's collectstatic output and most
// modern text is UTF-8, and a missing charset lets browsers guess.
var types = map[string]string{
	// Text and code.
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8", // RFC 9239
	".mjs":         "text/javascript; charset=utf-8",
	".cjs":         "text/javascript; charset=utf-8",
	".map":         "application/json",
	".json":        "application/json",
	".jsonld":      "application/ld+json",
	".webmanifest": "application/manifest+json",
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".csv":         "text/csv; charset=utf-8",
	".tsv":         "text/tab-separated-values; charset=utf-8",
	".ics":         "text/calendar; charset=utf-8",
	".vtt":         "text/vtt; charset=utf-8",
	".xml":         "application/xml",
	".xsl":         "application/xslt+xml",
	".xhtml":       "application/xhtml+xml",
	".rss":         "application/rss+xml",
	".atom":        "application/atom+xml",
	".yaml":        "application/yaml",
	".yml":         "application/yaml",
	".wasm":        "application/wasm",
	// Images.
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".apng": "image/apng",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".gif":  "image/gif",
	".webp": "image/webp",
	".avif": "image/avif",
	".jxl":  "image/jxl",
	".heic": "image/heic",
	".ico":  "image/x-icon",
	".bmp":  "image/bmp",
	".tif":  "image/tiff",
	".tiff": "image/tiff",
	// Fonts.
	".woff":  "font/woff",
	".woff2": "font/woff2",
	".ttf":   "font/ttf",
	".otf":   "font/otf",
	".eot":   "application/vnd.ms-fontobject",
	// Audio and video.
	".mp4":  "video/mp4",
	".m4v":  "video/mp4",
	".webm": "video/webm",
	".ogv":  "video/ogg",
	".mov":  "video/quicktime",
	".m3u8": "application/vnd.apple.mpegurl",
	".ts":   "video/mp2t",
	".mp3":  "audio/mpeg",
	".m4a":  "audio/mp4",
	".aac":  "audio/aac",
	".oga":  "audio/ogg",
	".ogg":  "audio/ogg",
	".opus": "audio/ogg",
	".wav":  "audio/wav",
	".flac": "audio/flac",
	// Documents and archives.
	".pdf":  "application/pdf",
	".zip":  "application/zip",
	".gz":   "application/gzip",
	".tgz":  "application/gzip",
	".br":   "application/octet-stream",
	".zst":  "application/zstd",
	".tar":  "application/x-tar",
	".7z":   "application/x-7z-compressed",
	".epub": "application/epub+zip",
	".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
	".odt":  "application/vnd.oasis.opendocument.text",
}

// unknownType is sent for extensions not in the table: browsers download
// it rather than render it, and nosniff stops them guessing.
const unknownType = "application/octet-stream"

// typeByName returns the Content-Type for a file name.
func typeByName(name string) string {
	ext := path.Ext(name)
	if t, ok := types[ext]; ok {
		return t
	}
	if t, ok := types[strings.ToLower(ext)]; ok {
		return t
	}
	return unknownType
}

// scriptCapable reports whether a browser rendering the type inline could
// run script with the site's origin: HTML, XHTML, SVG and XML (through
// XSLT or XHTML namespaces).
func scriptCapable(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	switch mt {
	case "text/html", "application/xhtml+xml", "image/svg+xml", "application/xml",
		"text/xml", "application/xslt+xml", "application/rss+xml", "application/atom+xml":
		return true
	}
	return false
}
