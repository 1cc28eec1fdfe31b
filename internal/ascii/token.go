package ascii

// tchar per RFC 9110 5.6.2.
var tchar = func() (t [256]bool) {
	for ch := '0'; ch <= '9'; ch++ {
		t[ch] = true
	}
	for ch := 'a'; ch <= 'z'; ch++ {
		t[ch] = true
		t[ch-'a'+'A'] = true
	}
	for _, ch := range "!#$%&'*+-.^_`|~" {
		t[ch] = true
	}
	return t
}()

// IsToken reports whether b is a non-empty RFC 9110 token: what a method,
// a header name or a transfer coding must be.
func IsToken[T string | []byte](b T) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if !tchar[b[i]] {
			return false
		}
	}
	return true
}

// TrimOWS removes optional whitespace (spaces and tabs, RFC 9110 5.6.3)
// from both ends; unlike strings.TrimSpace it leaves CR, LF and Unicode
// spaces alone, which header grammar does not allow there.
func TrimOWS[T string | []byte](s T) T {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// ParseChunkSize reads the size of a chunked-body chunk from its line
// (without CRLF): hex digits, then optional whitespace and extensions,
// which are skipped but must hold no control characters. More than 15
// digits is refused, so the size always fits an int64.
func ParseChunkSize(line []byte) (int64, bool) {
	for i, ch := range line {
		if ch != ';' {
			continue
		}
		for _, c := range line[i+1:] {
			if c < ' ' && c != '\t' || c == 0x7f {
				return 0, false
			}
		}
		line = TrimOWS(line[:i])
		break
	}
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, ch := range line {
		var v byte
		switch {
		case ch >= '0' && ch <= '9':
			v = ch - '0'
		case ch >= 'a' && ch <= 'f':
			v = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			v = ch - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(v)
	}
	return n, true
}
