package conf

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// File is a parsed configuration file: its YAML tree after environment
// expansion, and the line of every key path in it.
type File struct {
	Name  string
	root  *yaml.Node
	lines map[string]int
}

// Parse parses YAML and expands ${VAR} and ${VAR:-default} in every scalar
// value using lookup (os.LookupEnv in production). Expansion happens after
// parsing, so a variable's value can never change the file's structure.
// A syntax error or an unset variable without a default is an error naming
// the line; all unset variables are reported together.
func Parse(name string, data []byte, lookup func(string) (string, bool)) (*File, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, syntaxErrors(err)
	}
	f := &File{Name: name, lines: map[string]int{}}
	if len(doc.Content) > 0 {
		f.root = doc.Content[0]
	}
	var errs Errors
	f.walk(f.root, "", lookup, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	return f, nil
}

func (f *File) walk(n *yaml.Node, path string, lookup func(string) (string, bool), errs *Errors) {
	if n == nil {
		return
	}
	if _, seen := f.lines[path]; !seen {
		f.lines[path] = n.Line
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if strings.Contains(n.Value, "$") && n.Tag != "!!binary" {
			v, err := Expand(n.Value, lookup)
			if err != nil {
				*errs = append(*errs, &Error{Path: path, Line: n.Line, Msg: err.Error()})
			}
			n.Value = v
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := Join(path, n.Content[i].Value)
			f.lines[k] = n.Content[i].Line
			f.walk(n.Content[i+1], k, lookup, errs)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			f.walk(c, path+"["+strconv.Itoa(i)+"]", lookup, errs)
		}
	}
}

// Expand replaces ${NAME} and ${NAME:-default} in s. The default applies
// when NAME is unset or empty, as in a POSIX shell. "$${" stands for a
// literal "${". A ${NAME} without default whose variable is unset is an
// error: a missing secret must not silently become an empty string.
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	var missing []string
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return s, fmt.Errorf("unclosed ${ in %q: write ${NAME} or ${NAME:-default}", s)
		}
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return s, fmt.Errorf("${%s} is not a variable reference: names are letters, digits and _ (write $${ for a literal ${)", expr)
		}
		v, ok := lookup(name)
		switch {
		case ok && v != "":
			b.WriteString(v)
		case hasDef:
			b.WriteString(def)
		case ok:
			// Set but empty, no default: the user chose empty.
		default:
			missing = append(missing, name)
		}
		i += end + 1
	}
	if len(missing) > 0 {
		return b.String(), fmt.Errorf("environment variable %s is not set: set it, or give a default with ${%s:-value}", strings.Join(missing, ", "), missing[0])
	}
	return b.String(), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// Has reports whether the file sets the key at path (e.g. "ratelimit" or
// "server.listen"). A key written with an empty or null value counts.
func (f *File) Has(path string) bool {
	_, ok := f.lines[path]
	return ok && path != ""
}

// Line returns the line of the key at path, or of its nearest ancestor that
// the file contains (a default that fails validation is reported at its
// section), or 0.
func (f *File) Line(path string) int {
	for p := path; ; {
		if l, ok := f.lines[p]; ok && (p != "" || path == "") {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			return 0
		}
		p = p[:i]
	}
}

// Locate fills in the line of every problem that has none.
func (f *File) Locate(errs Errors) {
	for _, e := range errs {
		if e.Line == 0 {
			e.Line = f.Line(e.Path)
		}
	}
}

// Decode decodes the value at path ("" for the whole file) into dst, which
// must be a pointer. Decoding is strict: an unknown key, a duplicate key or
// a value of the wrong type is a problem naming the key and its line, and
// decoding goes on so that all problems are reported. Keys the file does not
// set leave dst's fields as they were, so callers set defaults first or after.
func (f *File) Decode(path string, dst any) Errors {
	n := f.root
	if path != "" {
		n = f.lookup(path)
	}
	if n == nil {
		return nil
	}
	var errs Errors
	d := &decoder{errs: &errs}
	d.decode(n, path, reflect.ValueOf(dst).Elem())
	return errs
}

// decoder bounds the work a file can cause: YAML aliases can nest and
// refer to themselves ("billion laughs"), which a config never needs.
type decoder struct {
	errs    *Errors
	aliases int
	depth   int
}

const (
	maxAliases = 100
	maxDepth   = 64
)

func (f *File) lookup(path string) *yaml.Node {
	n := f.root
	for _, part := range strings.Split(path, ".") {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// Unmarshaler is implemented by config types that decode themselves from a
// YAML node (a value that may be a string or a mapping, say). Problems go
// into errs with paths under path.
type Unmarshaler interface {
	UnmarshalConf(n *yaml.Node, path string, errs *Errors)
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	confUnmarshaler = reflect.TypeFor[Unmarshaler]()
)

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	errs := d.errs
	if n.Kind == yaml.AliasNode {
		if d.aliases++; d.aliases > maxAliases {
			*errs = append(*errs, &Error{Path: path, Line: n.Line, Msg: "too many YAML aliases (*name); write the values out"})
			return
		}
		n = n.Alias
	}
	if d.depth++; d.depth > maxDepth {
		*errs = append(*errs, &Error{Path: path, Line: n.Line, Msg: "nested too deeply"})
		d.depth--
		return
	}
	defer func() { d.depth-- }()
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		v.SetZero()
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(confUnmarshaler) {
		v.Addr().Interface().(Unmarshaler).UnmarshalConf(n, path, errs)
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, path, v.Elem())
		return
	}
	bad := func(want string) {
		*errs = append(*errs, &Error{Path: path, Line: n.Line, Msg: fmt.Sprintf("want %s, got %s", want, kindName(n))})
	}
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshaler) {
		if n.Kind != yaml.ScalarNode {
			bad("a single value")
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			*errs = append(*errs, &Error{Path: path, Line: n.Line, Msg: err.Error()})
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, path, v)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			bad("a mapping of names to values")
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			kp := Join(path, k)
			if seen[k] {
				*errs = append(*errs, &Error{Path: kp, Line: n.Content[i].Line, Msg: "key appears twice"})
				continue
			}
			seen[k] = true
			ev := reflect.New(v.Type().Elem()).Elem()
			if old := v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())); old.IsValid() {
				ev.Set(old)
			}
			d.decode(n.Content[i+1], kp, ev)
			v.SetMapIndex(reflect.ValueOf(k).Convert(v.Type().Key()), ev)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			bad("a list such as [a, b]")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, path+"["+strconv.Itoa(i)+"]", s.Index(i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			bad("a string")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		switch strings.ToLower(n.Value) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			bad("true or false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, v.Type().Bits())
		if n.Kind != yaml.ScalarNode || err != nil {
			bad("a whole number")
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		i, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, v.Type().Bits())
		if n.Kind != yaml.ScalarNode || err != nil {
			bad("a whole number, 0 or more")
			return
		}
		v.SetUint(i)
	case reflect.Float32, reflect.Float64:
		x, err := strconv.ParseFloat(n.Value, v.Type().Bits())
		if n.Kind != yaml.ScalarNode || err != nil {
			bad("a number")
			return
		}
		v.SetFloat(x)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			*errs = append(*errs, &Error{Path: path, Line: n.Line, Msg: err.Error()})
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		*errs = append(*errs, &Error{Path: path, Line: n.Line, Msg: "cannot be set from YAML (a gatehouse bug: " + v.Type().String() + ")"})
	}
}

// fieldsOf maps yaml key names to field index paths, following ",inline".
func fieldsOf(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, idx := range fieldsOf(sf.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out[name] = []int{i}
	}
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, path string, v reflect.Value) {
	errs := d.errs
	if n.Kind != yaml.MappingNode {
		*errs = append(*errs, &Error{Path: path, Line: n.Line, Msg: fmt.Sprintf("want a mapping of keys, got %s", kindName(n))})
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := n.Content[i]
		kp := Join(path, key.Value)
		idx, ok := fields[key.Value]
		if !ok {
			*errs = append(*errs, &Error{Path: kp, Line: key.Line, Msg: unknownKey(key.Value, fields)})
			continue
		}
		if seen[key.Value] {
			*errs = append(*errs, &Error{Path: kp, Line: key.Line, Msg: "key appears twice"})
			continue
		}
		seen[key.Value] = true
		d.decode(n.Content[i+1], kp, v.FieldByIndex(idx))
	}
}

func unknownKey(k string, fields map[string][]int) string {
	names := make([]string, 0, len(fields))
	best, bestD := "", 4
	for name := range fields {
		names = append(names, name)
		if d := editDistance(strings.ToLower(k), name); d < bestD || d == bestD && name < best {
			best, bestD = name, d
		}
	}
	sort.Strings(names)
	if best != "" && bestD <= 2 {
		return fmt.Sprintf("unknown key (did you mean %q?)", best)
	}
	return "unknown key; known keys here: " + strings.Join(names, ", ")
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// syntaxErrors turns yaml.v3's "yaml: line N: msg" into located problems.
func syntaxErrors(err error) Errors {
	var out Errors
	for _, msg := range strings.Split(err.Error(), "\n") {
		msg = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(msg), "yaml:"))
		if msg == "" || strings.HasPrefix(msg, "unmarshal errors") {
			continue
		}
		e := &Error{Msg: "YAML syntax: " + msg}
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if num, text, ok := strings.Cut(rest, ":"); ok {
				if n, err := strconv.Atoi(num); err == nil {
					e.Line, e.Msg = n, "YAML syntax: "+strings.TrimSpace(text)
				}
			}
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		out = Errors{{Msg: "YAML syntax: " + err.Error()}}
	}
	return out
}
