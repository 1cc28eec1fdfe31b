package static

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCurlCompressed has a real client (curl --compressed, which decodes
// br, zstd and gzip itself) read files back byte-identical, for a variant
// made on the fly and for a precompressed sibling.
func TestCurlCompressed(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip("curl not installed")
		}
		t.Fatal("curl not installed")
	}
	f := newFixture(t, Options{}, nil)
	for _, p := range []string{"/static/css/site.css", "/static/css/pre.css"} {
		for _, enc := range []string{"br", "zstd", "gzip"} {
			out := filepath.Join(t.TempDir(), "body")
			cmd := exec.CommandContext(t.Context(), curl, "--silent", "--show-error", "--compressed",
				"-H", "Accept-Encoding: "+enc, "-D", "-", "-o", out, f.front.URL+p)
			headers, err := cmd.Output()
			if err != nil {
				t.Fatalf("curl %s %s: %v", p, enc, err)
			}
			if !strings.Contains(strings.ToLower(string(headers)), "content-encoding: "+enc) {
				t.Errorf("%s %s: headers\n%s", p, enc, headers)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, css) {
				t.Errorf("%s %s: curl decoded %d bytes, not the file (%d)", p, enc, len(got), len(css))
			}
		}
	}
}
