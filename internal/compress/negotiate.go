package compress

import "github.com/gatehouse/gatehouse/internal/ascii"

// Accept is a parsed Accept-Encoding header: the q-value (in thousandths)
// the client gave each coding gatehouse knows. The zero value is not
// meaningful; use ParseAccept.
type Accept struct {
	q    [numEncodings]int16 // -1: not listed
	star int16               // q of "*", -1: not listed
	// present is false when the request had no Accept-Encoding at all.
	present bool
}

// ParseAccept parses an Accept-Encoding field value (RFC 9110 12.5.3).
// Several header lines are joined by the caller with ", " or passed one at
// a time to ParseAcceptLines. Malformed members are ignored, never fatal:
// the header comes from anyone.
func ParseAccept(h string) Accept {
	return ParseAcceptLines([]string{h})
}

// ParseAcceptLines is ParseAccept over each line of a repeated header, as
// found in http.Header["Accept-Encoding"]. A nil slice means the header was
// absent.
func ParseAcceptLines(lines []string) Accept {
	a := Accept{star: -1, present: lines != nil}
	for i := range a.q {
		a.q[i] = -1
	}
	for _, h := range lines {
		for len(h) > 0 {
			var member string
			member, h = cut(h, ',')
			name, params := cut(member, ';')
			name = trim(name)
			if name == "" {
				continue
			}
			q, ok := parseQ(params)
			if !ok {
				continue
			}
			if name == "*" {
				a.star = q
				continue
			}
			if e, known := ParseEncoding(name); known {
				// When a coding is listed twice, the larger q wins:
				// refusing by a duplicate would be the stranger reading.
				if q > a.q[e] {
					a.q[e] = q
				}
			}
		}
	}
	return a
}

// Q returns the q-value (0 to 1000) the client gives e.
func (a Accept) Q(e Encoding) int {
	if q := a.q[e]; q >= 0 {
		return int(q)
	}
	if a.star >= 0 {
		return int(a.star)
	}
	if e == Identity {
		// identity is acceptable unless excluded (RFC 9110 12.5.3).
		return 1000
	}
	return 0
}

// Negotiate picks the coding to send from offered (Identity is always
// possible). The highest non-zero q wins; ties go to the order of Preferred,
// a coding beats identity at equal q, and identity only counts with the q
// the client gave it explicitly (or through "*"). Identity is returned when nothing
// better is acceptable, even if the client said identity;q=0: a 406 helps
// nobody when the only alternative is an uncompressed body.
func (a Accept) Negotiate(offered Set) Encoding {
	if !a.present {
		// No header: any coding is allowed in theory, but clients that send
		// none (curl, scripts, health checks) expect plain bytes.
		return Identity
	}
	// identity competes with the q the client gave it (or "*"); when it
	// is not mentioned it is merely acceptable, and any coding the client
	// lists wins over it.
	best, bestQ := Identity, 0
	if q := a.q[Identity]; q >= 0 {
		bestQ = int(q)
	} else if a.star >= 0 {
		bestQ = int(a.star)
	}
	for _, e := range Preferred {
		if !offered.Has(e) {
			continue
		}
		if q := a.Q(e); q > 0 && (q > bestQ || q == bestQ && best == Identity) {
			best, bestQ = e, q
		}
	}
	return best
}

// Negotiate parses the Accept-Encoding lines and picks a coding from offered.
func Negotiate(lines []string, offered Set) Encoding {
	return ParseAcceptLines(lines).Negotiate(offered)
}

// parseQ reads the parameters after a coding; the only one defined is q.
// A q outside 0..1 or with more than three decimals is malformed.
func parseQ(params string) (int16, bool) {
	q := int16(1000)
	for len(params) > 0 {
		var p string
		p, params = cut(params, ';')
		k, v := cut(p, '=')
		k = trim(k)
		if !ascii.EqualFold(k, "q") {
			continue // unknown parameters are ignored
		}
		v = trim(v)
		n, ok := parseQValue(v)
		if !ok {
			return 0, false
		}
		q = n
	}
	return q, true
}

// parseQValue parses qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
func parseQValue(v string) (int16, bool) {
	if v == "" || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	n := int16(v[0]-'0') * 1000
	if len(v) == 1 {
		return n, true
	}
	if v[1] != '.' || len(v) > 5 {
		return 0, false
	}
	mult := int16(100)
	for i := 2; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n += int16(c-'0') * mult
		mult /= 10
	}
	if n > 1000 {
		return 0, false
	}
	return n, true
}

func cut(s string, sep byte) (before, after string) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func trim(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
