package conf

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one problem in a configuration file: the key path it concerns
// (e.g. "app.workers" or "static[1].root"), the line in the file when known,
// and what is wrong in words a person can act on.
type Error struct {
	Path string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	return b.String()
}

// Errorf returns a problem for the key at path. Packages return these from
// Validate with paths relative to their own section; the loader re-roots
// them and adds line numbers.
func Errorf(path, format string, args ...any) *Error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Errors collects problems so that validation reports all of them, not just
// the first. The zero value is ready to use.
type Errors []*Error

// Add records a problem for the key at path.
func (l *Errors) Add(path, format string, args ...any) {
	*l = append(*l, Errorf(path, format, args...))
}

// AddErr records err under path. Problems inside err (an *Error or Errors,
// possibly joined or wrapped) keep their own paths, joined under path.
func (l *Errors) AddErr(path string, err error) {
	if err == nil {
		return
	}
	for _, e := range Flatten(err) {
		e.Path = Join(path, e.Path)
		*l = append(*l, e)
	}
}

// Err returns the list as an error, or nil when it is empty.
func (l Errors) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

func (l Errors) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Flatten turns any error into a list of problems: Errors and *Error values
// (also inside errors.Join or %w wrapping) are kept with their paths; any
// other error becomes one problem without a path.
func Flatten(err error) Errors {
	if err == nil {
		return nil
	}
	var out Errors
	switch e := err.(type) {
	case Errors:
		for _, x := range e {
			c := *x
			out = append(out, &c)
		}
		return out
	case *Error:
		c := *e
		return Errors{&c}
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			out = append(out, Flatten(x)...)
		}
		return out
	}
	var one *Error
	if errors.As(err, &one) {
		c := *one
		return Errors{&c}
	}
	var many Errors
	if errors.As(err, &many) {
		return Flatten(many)
	}
	return Errors{{Msg: err.Error()}}
}

// Join joins key path parts: Join("app", "workers") is "app.workers",
// Join("static", "[1].root") is "static[1].root".
func Join(parent, child string) string {
	switch {
	case parent == "":
		return child
	case child == "":
		return parent
	case strings.HasPrefix(child, "["):
		return parent + child
	}
	return parent + "." + child
}
