package ascii

import "testing"

func TestIsToken(t *testing.T) {
	for in, want := range map[string]bool{
		"GET": true, "X-Request-Id": true, "!#$%&'*+-.^_`|~09azAZ": true,
		"": false, "a b": false, "a:b": false, "a\x00": false, "Ä": false, "a\tb": false,
	} {
		if got := IsToken(in); got != want {
			t.Errorf("IsToken(%q) = %v, want %v", in, got, want)
		}
		if got := IsToken([]byte(in)); got != want {
			t.Errorf("IsToken([]byte(%q)) = %v, want %v", in, got, want)
		}
	}
}

func TestTrimOWS(t *testing.T) {
	for in, want := range map[string]string{
		" \tgzip\t ": "gzip", "a b": "a b", "": "", " \t ": "", "\r\nx\r\n": "\r\nx\r\n",
	} {
		if got := TrimOWS(in); got != want {
			t.Errorf("TrimOWS(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseChunkSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int64
		okay bool
	}{
		{"0", 0, true},
		{"1a", 26, true},
		{"FFFFFFFFFFFFFFF", 1<<60 - 1, true},
		{"10;name=value", 16, true},
		{"10 \t;ext", 16, true},
		{"", 0, false},
		{"1000000000000000", 0, false}, // 16 digits could overflow
		{"-1", 0, false},
		{"0x10", 0, false},
		{"10;ext\x00", 0, false}, // control byte in an extension
		{"10;ext\x7f", 0, false},
		{" 10", 0, false},
	} {
		n, ok := ParseChunkSize([]byte(c.in))
		if n != c.n || ok != c.okay {
			t.Errorf("ParseChunkSize(%q) = %d, %v; want %d, %v", c.in, n, ok, c.n, c.okay)
		}
	}
}
