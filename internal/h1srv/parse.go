package h1srv

import (
	"bytes"
	"net/http"

	"github.com/gatehouse/gatehouse/internal/ascii"
)

// field locates one header field line in a request head: the name and
// the value with surrounding whitespace trimmed, as offsets into the head.
type field struct {
	ns, ne, vs, ve int32
}

// head is what parseHead found in a request head. Offsets are into the
// head's bytes, which become one string, so every name and value is a
// substring of it and costs no allocation of its own.
type head struct {
	method, target [2]int32
	minor          int // 0 or 1: HTTP/1.0 or HTTP/1.1
	fields         []field
}

// parseError is a request the server refuses: it answers it itself, or
// hands a stand-in to the handler (Server.HandleRejects). reason is a
// snake_case word for logs and metrics.
type parseError struct {
	status int
	reason string
}

func (e *parseError) Error() string { return "h1srv: " + e.reason }

var (
	errBadRequestLine = &parseError{http.StatusBadRequest, "bad_request_line"}
	errBadVersion     = &parseError{http.StatusHTTPVersionNotSupported, "http_version_not_supported"}
	errObsFold        = &parseError{http.StatusBadRequest, "obs_fold"}
	errBadField       = &parseError{http.StatusBadRequest, "bad_header_field"}
	errBareCR         = &parseError{http.StatusBadRequest, "bare_cr"}
	errTooLarge       = &parseError{http.StatusRequestHeaderFieldsTooLarge, "header_too_large"}
	errTooManyFields  = &parseError{http.StatusRequestHeaderFieldsTooLarge, "too_many_headers"}
	errURITooLong     = &parseError{http.StatusRequestURITooLong, "uri_too_long"}
)

// maxFields bounds the header field lines of one request (as nginx and
// net/http bound them by bytes; a count bounds the work per byte too).
const maxFields = 512

// skipEmptyLines drops the empty lines a client may send before a request
// line (RFC 9112 2.2) and returns how many bytes they took.
func skipEmptyLines(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
		if b[i] == '\r' && (i+1 >= len(b) || b[i+1] != '\n') {
			break
		}
		i++
	}
	return i
}

// findHeadEnd returns the length of the head at the start of b (through
// the empty line that ends it), or -1 if b holds no complete head yet.
// from is where a previous call stopped looking, so that a head arriving
// a byte at a time is scanned once.
func findHeadEnd(b []byte, from int) (end, next int) {
	i := from
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			// Resume at the last line start: a later '\n' is looked for
			// from here.
			return -1, i
		}
		p := i + j + 1 // just past this '\n'
		if p < len(b) && b[p] == '\n' {
			return p + 1, p + 1
		}
		if p+1 < len(b) && b[p] == '\r' && b[p+1] == '\n' {
			return p + 2, p + 2
		}
		if p >= len(b) || p+1 >= len(b) && b[p] == '\r' {
			// The line after may or may not be empty: wait for it.
			return -1, i
		}
		i = p
	}
}

// parseHead parses a complete head b (as found by findHeadEnd), filling h.
// It canonicalizes field names in place (so that "content-type" becomes
// the map key "Content-Type" without an allocation).
func parseHead(b []byte, h *head) *parseError {
	h.fields = h.fields[:0]
	line, rest := cutLine(b)
	if line == nil {
		return errBadRequestLine
	}
	// request-line = method SP request-target SP HTTP-version
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 || !ascii.IsToken(line[:sp1]) {
		return errBadRequestLine
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return errBadRequestLine
	}
	sp2 += sp1 + 1
	target := line[sp1+1 : sp2]
	for _, ch := range target {
		if ch <= ' ' || ch == 0x7f {
			return errBadRequestLine
		}
	}
	switch v := line[sp2+1:]; string(v) {
	case "HTTP/1.1":
		h.minor = 1
	case "HTTP/1.0":
		h.minor = 0
	default:
		if len(v) == 8 && string(v[:5]) == "HTTP/" && v[6] == '.' && isDigit(v[5]) && isDigit(v[7]) {
			return errBadVersion
		}
		return errBadRequestLine
	}
	h.method = [2]int32{0, int32(sp1)}
	h.target = [2]int32{int32(sp1 + 1), int32(sp2)}

	off := len(b) - len(rest)
	for {
		line, rest = cutLine(rest)
		if line == nil {
			return errBadField // no empty line: not a complete head
		}
		start := off
		off = len(b) - len(rest)
		if len(line) == 0 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errObsFold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !ascii.IsToken(line[:colon]) {
			return errBadField
		}
		vs, ve := colon+1, len(line)
		for vs < ve && (line[vs] == ' ' || line[vs] == '\t') {
			vs++
		}
		for ve > vs && (line[ve-1] == ' ' || line[ve-1] == '\t') {
			ve--
		}
		for _, ch := range line[vs:ve] {
			if ch < ' ' && ch != '\t' || ch == 0x7f {
				if ch == '\r' {
					return errBareCR
				}
				return errBadField
			}
		}
		if len(h.fields) == maxFields {
			return errTooManyFields
		}
		canonicalize(line[:colon])
		h.fields = append(h.fields, field{int32(start), int32(start + colon), int32(start + vs), int32(start + ve)})
	}
}

// cutLine returns the line at the start of b without its CRLF (or bare
// LF), and what follows; line is nil when b holds no line end.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b
	}
	line = b[:i:i]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, b[i+1:]
}

// canonicalize rewrites a token in place to net/http's canonical header
// key form: the first letter and any letter after a hyphen upper case, the
// rest lower case.
func canonicalize(name []byte) {
	upper := true
	for i, ch := range name {
		switch {
		case upper && 'a' <= ch && ch <= 'z':
			name[i] = ch - ('a' - 'A')
		case !upper && 'A' <= ch && ch <= 'Z':
			name[i] = ch + ('a' - 'A')
		}
		upper = ch == '-'
	}
}

func isDigit(ch byte) bool { return '0' <= ch && ch <= '9' }

// parseContentLength accepts 1*DIGIT, at most 18 of them (no overflow).
func parseContentLength(v string) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}

// hasToken reports whether the comma-separated list v holds tok, ASCII
// case-insensitively (Connection: keep-alive, close).
func hasToken(v, tok string) bool {
	for len(v) > 0 {
		var item string
		if i := indexByteString(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, ""
		}
		if ascii.EqualFold(ascii.TrimOWS(item), tok) {
			return true
		}
	}
	return false
}

// trailerNames calls fn with each token named in the Trailer field values
// (a comma-separated list, RFC 9110 6.6.2); anything else is skipped.
func trailerNames(values []string, fn func(name string)) {
	for _, v := range values {
		for v != "" {
			var name string
			if i := indexByteString(v, ','); i >= 0 {
				name, v = ascii.TrimOWS(v[:i]), v[i+1:]
			} else {
				name, v = ascii.TrimOWS(v), ""
			}
			if ascii.IsToken(name) {
				fn(name)
			}
		}
	}
}

func indexByteString(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
