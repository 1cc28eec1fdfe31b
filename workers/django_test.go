package workers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// djangoExample returns a wsgi config for examples/django with its data in
// a temp dir, skipping when Debian's python3-django is not installed.
func djangoExample(t *testing.T, workers int) Config {
	t.Helper()
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import django").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-django is required: %v", err)
		}
		t.Skip("python3-django not installed")
	}
	dir, _ := filepath.Abs("../examples/django")
	return Config{
		WSGI: "mysite.wsgi:application", Python: py, Chdir: dir,
		Env:     map[string]string{"EXAMPLE_DATA_DIR": t.TempDir()},
		Workers: workers, GracefulTimeout: dur("5s"), BootTimeout: dur("60s"),
	}
}

var csrfField = regexp.MustCompile(`(name="csrfmiddlewaretoken" value=")[^"]+`)

// TestDjangoExampleMatchesTestClient compares what Django's own test client
// returns for the example views with what comes through gatehouse.
func TestDjangoExampleMatchesTestClient(t *testing.T) {
	cfg := djangoExample(t, 2)
	reqs := []string{"GET /", "GET /api/notes", "GET /json", "GET /stream", "GET /notes/new", "GET /upload", "GET /nope", "HEAD /api/notes"}
	cmd := exec.Command(cfg.Python, append([]string{"client_dump.py"}, reqs...)...)
	cmd.Dir = cfg.Chdir
	cmd.Env = append(os.Environ(), "EXAMPLE_DATA_DIR="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]struct {
		Status      int    `json:"status"`
		ContentType string `json:"content_type"`
		Body        string `json:"body"`
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	_, _, base := startWSGI(t, cfg)
	for _, r := range reqs {
		method, path, _ := strings.Cut(r, " ")
		req, _ := http.NewRequest(method, base+path, nil)
		req.Host = "testserver" // what the test client sends
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := csrfField.ReplaceAllString(string(b), "${1}TOKEN")
		w := want[r]
		if resp.StatusCode != w.Status || resp.Header.Get("Content-Type") != w.ContentType || got != w.Body {
			t.Errorf("%s: got %d %q %q\nwant %d %q %q", r, resp.StatusCode, resp.Header.Get("Content-Type"), got, w.Status, w.ContentType, w.Body)
		}
	}
}

func TestDjangoExampleFormsAndUpload(t *testing.T) {
	cfg := djangoExample(t, 1)
	_, _, base := startWSGI(t, cfg)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	token := func(path string) string {
		_, body, err := get(c, base+path)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no CSRF token on %s", path)
		}
		return m[1]
	}
	// Without the token: 403.
	resp, err := c.PostForm(base+"/notes/new", url.Values{"text": {"no token"}})
	if err != nil || resp.StatusCode != 403 {
		t.Fatalf("POST without CSRF token: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	// With it: the note is stored and we are redirected.
	resp, err = c.PostForm(base+"/notes/new", url.Values{"text": {"via gatehouse"}, "csrfmiddlewaretoken": {token("/notes/new")}})
	if err != nil || resp.StatusCode != 302 {
		t.Fatalf("POST with CSRF token: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	if _, body, _ := get(c, base+"/api/notes"); !strings.Contains(body, "via gatehouse") {
		t.Errorf("note not stored: %s", body)
	}
	// Upload: 2 MiB file, hash checked by the view.
	blob := bytes.Repeat([]byte("gatehouse!"), 200<<10)
	var mp bytes.Buffer
	w := multipart.NewWriter(&mp)
	w.WriteField("csrfmiddlewaretoken", token("/upload"))
	fw, _ := w.CreateFormFile("file", "blob.bin")
	fw.Write(blob)
	w.Close()
	resp, err = c.Post(base+"/upload", w.FormDataContentType(), &mp)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Size   int    `json:"size"`
		SHA256 string `json:"sha256"`
	}
	json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	sum := sha256.Sum256(blob)
	if got.Size != len(blob) || got.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("upload: got %+v", got)
	}
	// Streaming: the first line comes before the view is done (~500ms).
	start := time.Now()
	r, err := http.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 7)
	io.ReadFull(r.Body, line)
	if string(line) != "line 0\n" || time.Since(start) > 400*time.Millisecond {
		t.Errorf("first streamed line %q after %s", line, time.Since(start))
	}
	r.Body.Close()
}
