package static

import (
	"strings"
	"unicode/utf8"
)

// cleanPath maps an escaped request path (r.URL.EscapedPath(), or an
// X-Accel-Redirect target) to a canonical, decoded path whose every segment
// is safe to hand to os.Root: no "." or ".." parts, no dotfiles or
// dot-folders, no encoded slash or backslash, no NUL or control
// characters, valid UTF-8 (which rules out overlong encodings of "/" and
// "."). "." segments are dropped. Empty segments ("//") are dropped, as nginx's merge_slashes does.
// dir reports a trailing slash. ok is false when the path must be answered
// 404 (or 400); nothing of such a path is ever opened.
//
// The fast path returns a substring of escaped without allocating when
// there is nothing to decode or drop.
func cleanPath(escaped string) (clean string, dir, ok bool) {
	if escaped == "" || escaped[0] != '/' {
		return "", false, false
	}
	if i := strings.IndexByte(escaped, '?'); i >= 0 {
		escaped = escaped[:i]
	}
	simple := true
	for i := 0; i < len(escaped); i++ {
		c := escaped[i]
		if c == '%' || c == '\\' || c < 0x20 || c >= 0x7f ||
			c == '/' && i+1 < len(escaped) && (escaped[i+1] == '/' || escaped[i+1] == '.') {
			simple = false
			break
		}
	}
	if simple {
		return escaped, strings.HasSuffix(escaped, "/"), true
	}
	var b strings.Builder
	b.Grow(len(escaped))
	rest := escaped[1:]
	dir = strings.HasSuffix(escaped, "/")
	for {
		seg, more := rest, false
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			seg, rest, more = rest[:i], rest[i+1:], true
		}
		if seg != "" {
			d, good := decodeSegment(seg)
			if !good {
				return "", false, false
			}
			if d == "." {
				// "/a/." names the folder "/a/".
				dir = dir || !more
			} else {
				b.WriteByte('/')
				b.WriteString(d)
			}
		}
		if !more {
			break
		}
	}
	if dir || b.Len() == 0 {
		b.WriteByte('/')
	}
	return b.String(), dir, true
}

// decodeSegment percent-decodes one path segment and checks it.
func decodeSegment(seg string) (string, bool) {
	d := seg
	if strings.IndexByte(seg, '%') >= 0 {
		buf := make([]byte, 0, len(seg))
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if c == '%' {
				if i+2 >= len(seg) || !isHex(seg[i+1]) || !isHex(seg[i+2]) {
					return "", false
				}
				c = unhex(seg[i+1])<<4 | unhex(seg[i+2])
				i += 2
			}
			buf = append(buf, c)
		}
		d = string(buf)
	}
	if d == "." {
		return d, true // "/a/./b" is "/a/b"; the caller drops it
	}
	if d == "" || d[0] == '.' || !utf8.ValidString(d) {
		// ".." and every dotfile (.env, .git) are not served: no going up,
		// ever, even when the result would still be inside the root.
		return "", false
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; c == '/' || c == '\\' || c < 0x20 || c == 0x7f {
			return "", false
		}
	}
	return d, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// fingerprinted reports whether a file name carries a content hash the way
// Django's ManifestStaticFilesStorage writes it: name.<12 hex digits>.ext
// (md5, first 12 digits). Such a file never changes under its name.
func fingerprinted(name string) bool {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	// Look at every dot-separated part but the first and the last.
	first := strings.IndexByte(name, '.')
	last := strings.LastIndexByte(name, '.')
	if first < 0 || first == last {
		return false
	}
	for _, part := range strings.Split(name[first+1:last], ".") {
		if len(part) != 12 {
			continue
		}
		hex := true
		for i := 0; i < len(part); i++ {
			if c := part[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				hex = false
				break
			}
		}
		if hex {
			return true
		}
	}
	return false
}
