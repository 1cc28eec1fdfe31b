package compress

import (
	"testing"
)

func TestNegotiate(t *testing.T) {
	t.Parallel()
	all := All
	noBr := All &^ (1 << Brotli)
	tests := []struct {
		name    string
		lines   []string
		offered Set
		want    Encoding
	}{
		{"absent", nil, all, Identity},
		{"empty", []string{""}, all, Identity},
		{"gzip only", []string{"gzip"}, all, Gzip},
		{"x-gzip alias", []string{"x-gzip"}, all, Gzip},
		{"browser", []string{"gzip, deflate, br, zstd"}, all, Brotli},
		{"browser without br offered", []string{"gzip, deflate, br, zstd"}, noBr, Zstd},
		{"q prefers gzip", []string{"br;q=0.5, gzip;q=0.9"}, all, Gzip},
		{"q zero refuses", []string{"br;q=0, gzip"}, all, Gzip},
		{"uppercase", []string{"GZIP;Q=1.0, BR;Q=0.1"}, all, Gzip},
		{"star", []string{"*"}, all, Brotli},
		{"star zero, gzip listed", []string{"*;q=0, gzip"}, all, Gzip},
		{"identity preferred", []string{"identity;q=1, gzip;q=0.5"}, all, Identity},
		{"identity refused, nothing else", []string{"identity;q=0"}, all, Identity},
		{"identity refused, gzip", []string{"identity;q=0, gzip;q=0.1"}, all, Gzip},
		{"not offered", []string{"deflate, compress"}, all, Identity},
		{"malformed q ignored", []string{"br;q=2, gzip"}, all, Gzip},
		{"malformed q text", []string{"br;q=abc, zstd;q=0.8"}, all, Zstd},
		{"too many decimals", []string{"br;q=0.0001, gzip;q=0.5"}, all, Gzip},
		{"spaces and empties", []string{" , ,gzip ; q=0.3 ,, zstd;q=0.2"}, all, Gzip},
		{"two lines", []string{"gzip;q=0.5", "zstd"}, all, Zstd},
		{"duplicate keeps max", []string{"br;q=0, br;q=0.9, gzip;q=0.5"}, all, Brotli},
		{"other params", []string{"gzip;level=1;q=0.4, zstd;q=0.3"}, all, Gzip},
		{"nothing offered", []string{"br, gzip"}, 1 << Identity, Identity},
		{"q=1.000", []string{"zstd;q=1.000, br;q=0.999"}, all, Zstd},
		{"q=1.001 invalid", []string{"zstd;q=1.001, br;q=0.5"}, all, Brotli},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Negotiate(tt.lines, tt.offered); got != tt.want {
				t.Errorf("Negotiate(%q) = %v, want %v", tt.lines, got, tt.want)
			}
		})
	}
}

func TestParseQValue(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int16{"0": 0, "1": 1000, "0.5": 500, "0.123": 123, "1.0": 1000, "1.000": 1000, "0.": 0} {
		if got, ok := parseQValue(in); !ok || got != want {
			t.Errorf("parseQValue(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "2", "1.5", "0.1234", "-1", ".5", "0,5", "1.001", "0.5x"} {
		if _, ok := parseQValue(in); ok {
			t.Errorf("parseQValue(%q) accepted", in)
		}
	}
}

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "gzip", "br;q=0.5, gzip;q=1", "*;q=0", "identity;q=0, zstd", ";;,,q=", "br;q=1.000", "\x00,\xff;q=0.9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		a := ParseAccept(h)
		for _, e := range []Encoding{Identity, Gzip, Brotli, Zstd} {
			if q := a.Q(e); q < 0 || q > 1000 {
				t.Fatalf("Q(%v) = %d for %q", e, q, h)
			}
		}
		got := a.Negotiate(All)
		// The choice is acceptable to the client, or identity.
		if got != Identity && a.Q(got) == 0 {
			t.Fatalf("chose %v with q=0 for %q", got, h)
		}
		// Nothing offered has a higher q than the choice.
		for _, e := range Preferred {
			if a.Q(e) > a.Q(got) && got != Identity {
				t.Fatalf("chose %v (q=%d) over %v (q=%d) for %q", got, a.Q(got), e, a.Q(e), h)
			}
		}
		if a.Negotiate(1<<Identity) != Identity {
			t.Fatalf("chose a coding that was not offered for %q", h)
		}
	})
}

func BenchmarkNegotiate(b *testing.B) {
	lines := []string{"gzip, deflate, br, zstd"}
	b.ReportAllocs()
	for b.Loop() {
		Negotiate(lines, All)
	}
}
