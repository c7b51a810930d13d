package roles

import (
	"errors"
	"fmt"
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
	data, err := os.ReadFile(file)
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
	var errs []error
	check(file, root, reflect.TypeOf(v).Elem(), &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
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

// check compares node n with Go type t and appends an error for every
// unknown key and every value of the wrong kind.
func check(file string, n *yaml.Node, t reflect.Type, errs *[]error) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
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
				*errs = append(*errs, errorf(Pos{file, k.Line}, "unknown key %q (want one of: %s)", k.Value, strings.Join(names, ", ")))
				continue
			}
			check(file, v, ft, errs)
		}
	case reflect.Map:
		if !want(yaml.MappingNode, "value") {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			check(file, n.Content[i+1], t.Elem(), errs)
		}
	case reflect.Slice:
		if !want(yaml.SequenceNode, "value") {
			return
		}
		for _, c := range n.Content {
			check(file, c, t.Elem(), errs)
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
