package roles

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Pos is a place in a fleet file.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Error is a problem at a place in a fleet file.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

func errorf(p Pos, format string, args ...any) error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

// decodeFile strictly decodes the YAML document in file into v, a pointer to
// a struct of yaml-tagged fields. Every unknown key and every value of the
// wrong kind is reported, each with its line, so one run shows them all.
// It returns the document's root mapping for callers that need more lines.
func decodeFile(file string, v any) (*yaml.Node, error) {
	data, err := readFleetFile(file)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(file, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, errorf(Pos{File: file}, "empty document")
	}
	root := doc.Content[0]
	c := &checker{file: file}
	c.check(root, reflect.TypeOf(v).Elem())
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	if err := root.Decode(v); err != nil {
		return nil, yamlError(file, err)
	}
	return root, nil
}

// yamlError turns yaml.v3's "yaml: line N: msg" into "file:N: msg".
func yamlError(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs []error
		for _, m := range te.Errors {
			errs = append(errs, lineError(file, m))
		}
		return errors.Join(errs...)
	}
	return lineError(file, err.Error())
}

func lineError(file, msg string) error {
	msg = strings.TrimPrefix(msg, "yaml: ")
	var line int
	if n, _ := fmt.Sscanf(msg, "line %d:", &line); n == 1 {
		msg = strings.TrimSpace(msg[strings.IndexByte(msg, ':')+1:])
		return errorf(Pos{file, line}, "%s", msg)
	}
	return errorf(Pos{File: file}, "%s", msg)
}

var kindNames = map[yaml.Kind]string{
	yaml.DocumentNode: "a document",
	yaml.SequenceNode: "a list",
	yaml.MappingNode:  "a mapping",
	yaml.ScalarNode:   "a scalar",
	yaml.AliasNode:    "an alias",
}

// MaxFileSize is the largest fleet or role file olimage reads: far more
// than anyone writes by hand, far less than what would take gigabytes to
// parse.
const MaxFileSize = 16 << 20

// readFleetFile reads a fleet or role file, which must be a regular file
// of at most MaxFileSize bytes.
func readFleetFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errorf(Pos{File: file}, "not a regular file (%s)", fi.Mode().Type())
	}
	// The size may change as it is read: never read more than the cap.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize || fi.Size() > MaxFileSize {
		return nil, errorf(Pos{File: file}, "%d bytes; a fleet file may have at most %d (%d MiB)", max(fi.Size(), int64(len(data))), MaxFileSize, MaxFileSize>>20)
	}
	return data, nil
}

// checker compares a YAML document with the Go type it decodes into.
type checker struct {
	file string
	errs []error
	// seen holds the nodes checked against each type. An alias is checked
	// where its anchor is, once: followed at every use, a few kilobytes of
	// aliases to aliases expand to millions of nodes (yaml.v3 limits
	// that when decoding, not when a caller walks the nodes).
	seen map[checked]bool
	// visits counts the nodes checked, for tests.
	visits int
}

type checked struct {
	n *yaml.Node
	t reflect.Type
}

// check compares node n with Go type t and appends an error for every
// unknown key and every value of the wrong kind.
func (c *checker) check(n *yaml.Node, t reflect.Type) {
	file, errs := c.file, &c.errs
	alias := false
	for n.Kind == yaml.AliasNode {
		n, alias = n.Alias, true
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if alias || n.Anchor != "" {
		k := checked{n, t}
		if c.seen[k] {
			return
		}
		if c.seen == nil {
			c.seen = map[checked]bool{}
		}
		c.seen[k] = true
	}
	c.visits++
	pos := Pos{file, n.Line}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the zero value
	}
	want := func(k yaml.Kind, what string) bool {
		if n.Kind != k {
			*errs = append(*errs, errorf(pos, "%s: want %s, got %s", what, kindNames[k], describe(n)))
			return false
		}
		return true
	}
	switch t.Kind() {
	case reflect.Struct:
		if !want(yaml.MappingNode, "value") {
			return
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
			names = append(names, name)
		}
		sort.Strings(names)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				if near := Closest(k.Value, names); near != "" {
					*errs = append(*errs, errorf(Pos{file, k.Line}, "unknown key %q (did you mean %q? want one of: %s)", k.Value, near, strings.Join(names, ", ")))
				} else {
					*errs = append(*errs, errorf(Pos{file, k.Line}, "unknown key %q (want one of: %s)", k.Value, strings.Join(names, ", ")))
				}
				continue
			}
			c.check(v, ft)
		}
	case reflect.Map:
		if !want(yaml.MappingNode, "value") {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.check(n.Content[i+1], t.Elem())
		}
	case reflect.Slice:
		if !want(yaml.SequenceNode, "value") {
			return
		}
		for _, item := range n.Content {
			c.check(item, t.Elem())
		}
	case reflect.String:
		want(yaml.ScalarNode, "value")
	case reflect.Bool:
		if want(yaml.ScalarNode, "value") && n.Tag != "!!bool" {
			*errs = append(*errs, errorf(pos, "value %q: want true or false", n.Value))
		}
	case reflect.Float64:
		if want(yaml.ScalarNode, "value") && n.Tag != "!!int" && n.Tag != "!!float" {
			*errs = append(*errs, errorf(pos, "value %q: want a number", n.Value))
		}
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64:
		if want(yaml.ScalarNode, "value") && n.Tag != "!!int" {
			*errs = append(*errs, errorf(pos, "value %q: want a whole number", n.Value))
		}
	}
}

func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("%q", n.Value)
	}
	return kindNames[n.Kind]
}

// field returns the value node of key in mapping n, or nil.
func field(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// keyLine returns the line of key in mapping n, or n's own line.
func keyLine(n *yaml.Node, key string) int {
	if n == nil {
		return 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return n.Line
}

// itemLines returns the line of each item of the list under key.
func itemLines(n *yaml.Node, key string) []int {
	var lines []int
	if l := field(n, key); l != nil && l.Kind == yaml.SequenceNode {
		for _, c := range l.Content {
			lines = append(lines, c.Line)
		}
	}
	return lines
}

func lineAt(lines []int, i int) int {
	if i < len(lines) {
		return lines[i]
	}
	return 0
}

// Closest returns the candidate nearest to word by edit distance, if it is
// near enough to be a typo (a third of word's length or less), else "".
// Ties go to the first in name order.
func Closest(word string, candidates []string) string {
	best, bestD := "", len(word)/3+1
	for _, c := range candidates {
		if d := editDistance(word, c); d < bestD || d == bestD && best != "" && c < best {
			best, bestD = c, d
		}
	}
	if best == word || bestD > len(word)/3 {
		return ""
	}
	return best
}

// editDistance counts the insertions, deletions, substitutions and swaps
// of neighbours that turn a into b (optimal string alignment, in bytes).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
