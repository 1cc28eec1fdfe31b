package proxy

import (
	"net/http"
	"strings"
)

// HTTP/1 framing (obs-folds, bare CRs, Content-Length with
// Transfer-Encoding, malformed chunks, oversized heads) is refused by
// internal/h1srv's parser before a request exists; HTTP/2 framing by the
// HTTP/2 server. What is left are rules about the request itself that hold
// whatever the protocol, checked here on every request before it goes
// anywhere: the app, the rate limiter and the static mounts must all see
// the same path, so a target that different parsers could read
// differently never gets through (RFC 9112 section 11.2, request
// smuggling and rule bypasses).

// checkRequest returns the status and reason to refuse r with, or 0.
func checkRequest(r *http.Request) (int, string) {
	switch r.Method {
	case "CONNECT", "TRACE", "TRACK":
		// Not a forward proxy; TRACE reflects credentials (XST).
		return http.StatusMethodNotAllowed, "method_not_allowed"
	}
	if reason := checkTarget(r.Method, r.RequestURI); reason != "" {
		return http.StatusBadRequest, reason
	}
	switch {
	case r.Host != "" && !validHost(r.Host):
		return http.StatusBadRequest, "bad_host"
	case r.Host == "" && r.ProtoMajor == 1 && r.ProtoMinor == 1:
		// An empty Host field, which RFC 9112 allows only for targets
		// without an authority: gatehouse serves named sites.
		return http.StatusBadRequest, "bad_host"
	}
	return 0, ""
}

// checkTarget accepts origin-form targets ("/path?query") and "*" for
// OPTIONS. Absolute-form is for forward proxies, which gatehouse is not;
// a fragment, a raw byte outside visible ASCII, a broken %-escape, a
// backslash or a dot segment in the path are refused.
func checkTarget(method, t string) string {
	if t == "*" {
		if method == "OPTIONS" {
			return ""
		}
		return "bad_target"
	}
	if t == "" || t[0] != '/' {
		if strings.Contains(t, "://") {
			return "absolute_form_target"
		}
		return "bad_target"
	}
	path := t
	if i := strings.IndexByte(t, '?'); i >= 0 {
		path = t[:i]
	}
	for i := 0; i < len(t); i++ {
		ch := t[i]
		switch {
		case ch <= ' ' || ch >= 0x7f:
			return "bad_target_byte"
		case ch == '#':
			return "fragment_in_target"
		case ch == '%':
			if i+2 >= len(t) || !isHex(t[i+1]) || !isHex(t[i+2]) {
				return "bad_percent_encoding"
			}
		case ch == '\\' && i < len(path):
			return "backslash_in_path"
		}
	}
	// Dot segments, also percent-encoded ones ("%2e%2e"), and encoded NUL.
	// An encoded slash separates segments too: an app that decodes the
	// path (WSGI's PATH_INFO is decoded) sees "/%2e%2F" as "/./".
	segs := path[1:]
	if strings.Contains(segs, "%2f") || strings.Contains(segs, "%2F") {
		segs = strings.NewReplacer("%2f", "/", "%2F", "/").Replace(segs)
	}
	for seg := range strings.SplitSeq(segs, "/") {
		if isDotSegment(seg) {
			return "dot_segment"
		}
	}
	if strings.Contains(path, "%00") {
		return "nul_in_path"
	}
	return ""
}

// isDotSegment reports whether seg is "." or "..", each dot perhaps
// percent-encoded ("%2e", "%2E"), without allocating: it runs for every
// segment of every request path.
func isDotSegment(seg string) bool {
	dots := 0
	for i := 0; i < len(seg); {
		switch {
		case seg[i] == '.':
			i++
		case i+2 < len(seg) && seg[i] == '%' && seg[i+1] == '2' && (seg[i+2] == 'e' || seg[i+2] == 'E'):
			i += 3
		default:
			return false
		}
		if dots++; dots > 2 {
			return false
		}
	}
	return dots > 0
}

// validHost accepts a reg-name, IPv4 or [IPv6] with an optional port.
func validHost(v string) bool {
	if len(v) == 0 || len(v) > 255 {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch ch := v[i]; {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9':
		case strings.IndexByte("-._~:[]!$&'()*+,;=%", ch) >= 0:
		default:
			return false
		}
	}
	return true
}

func isHex(ch byte) bool {
	return ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F'
}
