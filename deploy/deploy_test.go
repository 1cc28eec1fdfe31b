package deploy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// repoRoot is where the tests run gatehouse from: the image's /srv holds the
// same examples/ tree, so the configs' relative paths mean the same thing.
const repoRoot = ".."

var (
	buildOnce sync.Once
	binPath   string
	binErr    error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// gatehouseBin builds cmd/gatehouse once for all tests of the package.
func gatehouseBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "gatehouse-deploy-test")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "gatehouse")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/gatehouse")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/gatehouse: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// validate runs `gatehouse validate -c file` from the repository root with
// only env (plus PATH and HOME) in the environment, so that a variable the
// test environment happens to set cannot make a config pass.
func validate(t *testing.T, file string, env map[string]string) {
	t.Helper()
	cmd := exec.Command(gatehouseBin(t), "validate", "-c", file)
	cmd.Dir = repoRoot
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("gatehouse validate -c %s (env %v): %v\n%s", file, env, err, out)
	}
}

// need finds an external program, skipping outside CI and failing in CI.
func need(t *testing.T, prog, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (Debian package %s); CI must install it", prog, pkg)
	}
	t.Skipf("%s not found; apt-get install -y %s", prog, pkg)
	return ""
}

// imageConfig maps a config path inside the image to the repository file
// the Dockerfile copies there (COPY deploy/gatehouse.*.yaml /etc/gatehouse/).
func imageConfig(t *testing.T, p string) string {
	t.Helper()
	dir, base := filepath.Split(p)
	if dir != "/etc/gatehouse/" {
		t.Fatalf("config %s is not one the image carries (/etc/gatehouse/*)", p)
	}
	local := filepath.Join("deploy", base)
	if _, err := os.Stat(filepath.Join(repoRoot, local)); err != nil {
		t.Fatalf("config %s: %v", p, err)
	}
	return local
}

// composeFiles are the compose files the tests check.
func composeFiles(t *testing.T) []string {
	files, err := filepath.Glob("docker-compose*.yml")
	if err != nil || len(files) < 2 {
		t.Fatalf("compose files: %v %v, want at least two", files, err)
	}
	return files
}

func TestComposeConfig(t *testing.T) {
	dc := need(t, "docker-compose", "docker-compose")
	for _, f := range composeFiles(t) {
		t.Run(f, func(t *testing.T) {
			cmd := exec.Command(dc, "-f", f, "config")
			// Without the user's GATEHOUSE_* variables: the defaults must work.
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("docker-compose -f %s config: %v\n%s", f, err, stderr.Bytes())
			}
			var doc struct {
				Services map[string]struct {
					Build       any               `yaml:"build"`
					Image       string            `yaml:"image"`
					Environment map[string]string `yaml:"environment"`
					Restart     string            `yaml:"restart"`
					StopGrace   string            `yaml:"stop_grace_period"`
					Volumes     []any             `yaml:"volumes"`
				} `yaml:"services"`
				Volumes map[string]any `yaml:"volumes"`
			}
			if err := yaml.Unmarshal(out, &doc); err != nil {
				t.Fatalf("parsing docker-compose config output: %v\n%s", err, out)
			}
			if _, ok := doc.Volumes["certs"]; !ok {
				t.Errorf("no named volume certs (certificates must outlive containers)")
			}
			if _, ok := doc.Services["redis"]; !ok {
				t.Errorf("no redis service for shared rate limits")
			}
			configs := 0
			for name, s := range doc.Services {
				if s.Restart == "" || s.Restart == "no" {
					t.Errorf("service %s: no restart policy", name)
				}
				cfg, ok := s.Environment["GATEHOUSE_CONFIG"]
				if !ok {
					continue
				}
				configs++
				if s.StopGrace == "" {
					t.Errorf("service %s: no stop_grace_period above shutdown_timeout", name)
				}
				t.Run(name, func(t *testing.T) {
					validate(t, imageConfig(t, cfg), s.Environment)
				})
			}
			if configs == 0 {
				t.Errorf("no service names a GATEHOUSE_CONFIG")
			}
		})
	}
}

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

func parseDockerfile(t *testing.T, path string) []instruction {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur *instruction
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur == nil) {
			continue
		}
		cont := strings.HasSuffix(line, "\\")
		line = strings.TrimSuffix(line, "\\")
		if cur == nil {
			cmd, args, _ := strings.Cut(line, " ")
			out = append(out, instruction{line: n, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
			cur = &out[len(out)-1]
		} else {
			cur.args += " " + line
		}
		if !cont {
			cur = nil
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, filepath.Join(repoRoot, "Dockerfile"))
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("line %d: %s before the first FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stage(s), want a multi-stage build", len(stages))
	}
	if from := stages[0][0].args; !strings.HasPrefix(from, "golang:") {
		t.Errorf("build stage FROM %q, want the official golang image", from)
	}
	final := stages[len(stages)-1]
	if from := final[0].args; !strings.HasPrefix(from, "python:") || !strings.Contains(from, "slim") {
		t.Errorf("final stage FROM %q, want a python slim image (app.wsgi needs Python)", from)
	}
	last := func(cmd string) (instruction, bool) {
		for i := len(final) - 1; i >= 0; i-- {
			if final[i].cmd == cmd {
				return final[i], true
			}
		}
		return instruction{}, false
	}
	if u, ok := last("USER"); !ok {
		t.Errorf("final stage has no USER: it would run as root")
	} else if name, _, _ := strings.Cut(u.args, ":"); name == "root" || name == "0" {
		t.Errorf("final stage USER %q is root", u.args)
	}
	if _, ok := last("EXPOSE"); !ok {
		t.Errorf("final stage has no EXPOSE")
	}
	if _, ok := last("VOLUME"); !ok {
		t.Errorf("final stage has no VOLUME for certificates and static files")
	} else {
		v, _ := last("VOLUME")
		for _, want := range []string{"/srv/data/certs", "/srv/staticfiles"} {
			if !strings.Contains(v.args, want) {
				t.Errorf("VOLUME %s lacks %s", v.args, want)
			}
		}
	}
	hc, ok := last("HEALTHCHECK")
	if !ok {
		t.Fatalf("final stage has no HEALTHCHECK")
	}
	// The check asks 127.0.0.1:$ADMIN_PORT, default 9180: each config's
	// admin.listen must be that same address.
	if !strings.Contains(hc.args, "http://127.0.0.1:%s/healthz") || !strings.Contains(hc.args, "os.environ.get('ADMIN_PORT', '9180')") {
		t.Fatalf("HEALTHCHECK %q does not ask the admin /healthz on 127.0.0.1:$ADMIN_PORT", hc.args)
	}
	const healthAddr = "127.0.0.1:${ADMIN_PORT:-9180}"

	// The final stage may only copy from the build stage or from the
	// repository; every repository source must exist, so that the image
	// carries all it needs.
	var configs []string
	for _, in := range final {
		if in.cmd != "COPY" || strings.Contains(in.args, "--from=") {
			continue
		}
		fields := strings.Fields(in.args)
		var srcs []string
		for _, f := range fields[:len(fields)-1] {
			if !strings.HasPrefix(f, "--") {
				srcs = append(srcs, f)
			}
		}
		for _, src := range srcs {
			matches, _ := filepath.Glob(filepath.Join(repoRoot, src))
			if len(matches) == 0 {
				t.Errorf("line %d: COPY %s: nothing in the repository matches", in.line, src)
			}
			if strings.HasSuffix(src, ".yaml") {
				for _, m := range matches {
					rel, _ := filepath.Rel(repoRoot, m)
					configs = append(configs, rel)
				}
			}
		}
	}
	env, ok := last("ENV")
	if !ok || !strings.Contains(env.args, "GATEHOUSE_CONFIG=") {
		t.Fatalf("final stage does not set GATEHOUSE_CONFIG")
	}
	def := regexp.MustCompile(`GATEHOUSE_CONFIG=(\S+)`).FindStringSubmatch(env.args)[1]
	if local := imageConfig(t, def); !slices.Contains(configs, local) {
		t.Errorf("GATEHOUSE_CONFIG=%s is not copied into the image (copied: %v)", def, configs)
	}
	for _, c := range configs {
		t.Run(c, func(t *testing.T) {
			validate(t, c, nil)
			var cfg struct {
				Admin struct {
					Listen string `yaml:"listen"`
				} `yaml:"admin"`
			}
			data, err := os.ReadFile(filepath.Join(repoRoot, c))
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(data, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.Admin.Listen != healthAddr {
				t.Errorf("admin.listen %q, but the HEALTHCHECK asks %s", cfg.Admin.Listen, healthAddr)
			}
		})
	}
}

func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile("gatehouse.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	for _, want := range []string{
		"ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM", "Restart=on-failure",
		"DynamicUser=yes", "StateDirectory=gatehouse",
	} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("unit lacks %s", want)
		}
	}
	// TimeoutStopSec must leave room for the default shutdown_timeout (30s).
	m := regexp.MustCompile(`\nTimeoutStopSec=(\d+)s\n`).FindStringSubmatch(unit)
	if m == nil {
		t.Errorf("unit lacks TimeoutStopSec=Ns")
	} else if n := 0; func() bool { fmt.Sscan(m[1], &n); return n <= 30 }() {
		t.Errorf("TimeoutStopSec=%ss is not above server.shutdown_timeout (30s)", m[1])
	}

	sa := need(t, "systemd-analyze", "systemd")
	// verify wants ExecStart's binary to exist: point it at the one just built.
	dir := t.TempDir()
	file := filepath.Join(dir, "gatehouse.service")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(unit, "/usr/local/bin/gatehouse", gatehouseBin(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", file).CombinedOutput()
	// verify exits 0 on unknown keys and only prints them: any line about
	// our file is a failure.
	if err != nil || bytes.Contains(out, []byte(file)) {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestDocsYAML validates every complete YAML example in docs/*.md. A block
// whose first line is "# fragment" shows a part of a file and is skipped.
func TestDocsYAML(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	fence := regexp.MustCompile("(?ms)^```yaml\n(.*?)^```")
	dir := t.TempDir()
	checked := 0
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range fence.FindAllSubmatchIndex(data, -1) {
			block := data[m[2]:m[3]]
			if bytes.HasPrefix(block, []byte("# fragment")) {
				continue
			}
			line := 1 + bytes.Count(data[:m[0]], []byte("\n"))
			name := fmt.Sprintf("%s:%d", filepath.Base(doc), line)
			file, _ := filepath.Abs(filepath.Join(dir, fmt.Sprintf("%s-%d.yaml", filepath.Base(doc), i)))
			if err := os.WriteFile(file, block, 0o644); err != nil {
				t.Fatal(err)
			}
			checked++
			t.Run(name, func(t *testing.T) {
				validate(t, file, map[string]string{"JWT_SECRET": "test-secret", "DJANGO_SECRET_KEY": "x"})
			})
		}
	}
	t.Logf("%d YAML examples validated", checked)
}
