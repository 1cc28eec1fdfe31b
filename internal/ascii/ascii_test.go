package ascii

import "testing"

func TestEqualFold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{"Transfer-Encoding", "transfer-encoding", true},
		{"CHUNKED", "chunked", true},
		{"chunked", "chunke", false},
		{"\u212Aeep", "keep", false},
		{"gzip", "gzap", false},
		{"", "", true},
	}
	for _, tt := range tests {
		if got := EqualFold(tt.a, tt.b); got != tt.want {
			t.Errorf("EqualFold(%q, %q) = %v", tt.a, tt.b, got)
		}
		if got := EqualFold([]byte(tt.a), tt.b); got != tt.want {
			t.Errorf("EqualFold([]byte(%q), %q) = %v", tt.a, tt.b, got)
		}
	}
}
