// Package ascii holds the byte-level helpers HTTP parsing needs where the
// standard library's are Unicode-aware, which header grammar is not:
//
//	ascii.EqualFold(name, "Transfer-Encoding") // works on []byte and string
package ascii

// EqualFold reports whether a and b are equal under ASCII case folding.
// Unlike strings.EqualFold it does not fold non-ASCII runes, so "\u212A"
// (Kelvin sign) never matches "k": a header name that only looks like
// Transfer-Encoding must not be taken for it.
func EqualFold[T string | []byte](a T, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
