// Command gatehouse is one binary in front of a web app: TLS, static files,
// rate limits, and the app's worker processes. See README.md.
package main

import (
	"context"
	"strings"

	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/gatehouse/gatehouse/internal/conf"
	"github.com/gatehouse/gatehouse/static"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `gatehouse: one binary in front of your web app: TLS, static files,
rate limits and the app's worker processes.

Usage:
  gatehouse run      -c FILE   start serving with the config FILE
  gatehouse validate -c FILE   check FILE, print every problem, start nothing
  gatehouse compress DIR...    write .br, .zst and .gz siblings of the
                               compressible files under DIR (after Django's
                               collectstatic, in a Docker build), served
                               without compressing at request time
  gatehouse version            print the version
  gatehouse help               print this help

The config file can also be given in GATEHOUSE_CONFIG. Values in it may use
${VAR} and ${VAR:-default} to read the environment.

Signals (run): SIGHUP re-reads the file and applies it without dropping a
request (a bad file is logged and the running config stays); SIGTERM or
SIGINT stop accepting, finish in-flight requests, and exit 0.

Exit codes: 0 success, 1 the server failed, 2 bad usage or a bad config.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		path, ok := configFlag(cmd, rest, stderr)
		if !ok {
			return 2
		}
		return serve(path, stderr)
	case "validate":
		path, ok := configFlag(cmd, rest, stderr)
		if !ok {
			return 2
		}
		return validate(path, stdout, stderr)
	case "compress":
		return compressDirs(rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "gatehouse: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// configFlag parses `-c FILE` (or --config), falling back to
// GATEHOUSE_CONFIG.
func configFlag(cmd string, args []string, stderr io.Writer) (string, bool) {
	fs := flag.NewFlagSet("gatehouse "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var path string
	fs.StringVar(&path, "c", os.Getenv("GATEHOUSE_CONFIG"), "config `FILE` (default $GATEHOUSE_CONFIG)")
	fs.StringVar(&path, "config", os.Getenv("GATEHOUSE_CONFIG"), "config `FILE` (same as -c)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: gatehouse %s -c FILE\n", cmd)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatehouse %s: unexpected argument %q\n", cmd, fs.Arg(0))
		fs.Usage()
		return "", false
	}
	if path == "" {
		fmt.Fprintf(stderr, "gatehouse %s: no config file: pass -c FILE or set GATEHOUSE_CONFIG\n", cmd)
		return "", false
	}
	return path, true
}

func validate(path string, stdout, stderr io.Writer) int {
	if _, err := loadConfig(path); err != nil {
		printConfigError(stderr, path, err)
		return 2
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}

// printConfigError prints every problem on its own line, prefixed with the
// file name, as compilers do, so editors can jump to the line.
func printConfigError(w io.Writer, path string, err error) {
	var list conf.Errors
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintf(w, "%s: %s\n", path, e)
		}
		fmt.Fprintf(w, "%s: %d problem(s); nothing was started\n", path, len(list))
		return
	}
	fmt.Fprintf(w, "%s: %v\n", path, err)
}

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + bi.GoVersion
	}
	return "gatehouse " + v
}

// compressDirs runs `gatehouse compress DIR...`.
func compressDirs(dirs []string, stdout, stderr io.Writer) int {
	if len(dirs) == 0 || strings.HasPrefix(dirs[0], "-") {
		fmt.Fprint(stderr, "Usage: gatehouse compress DIR...\n\nWrites .br, .zst and .gz siblings of every compressible file under each DIR\n(skipping those that would not save 5%, and siblings already up to date).\n")
		return 2
	}
	code := 0
	for _, dir := range dirs {
		st, err := static.CompressTree(context.Background(), dir, static.TreeOptions{})
		fmt.Fprintf(stdout, "%s: %s\n", dir, st)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", dir, err)
			code = 1
		}
	}
	return code
}
