package main

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// commands returns every user-facing command below root: not hidden, not
// cobra's help and completion scripts.
func commands(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, c := range root.Commands() {
		if c.Hidden || c.Name() == "help" {
			continue
		}
		out = append(out, c)
		if c.Name() != "completion" {
			out = append(out, commands(c)...)
		}
	}
	return out
}

var schemaRE = regexp.MustCompile(`schema (olimage\.[a-z-]+/v[0-9]+)`)

// jsonSchemas maps each command with --json to the schema its flag's help
// names.
func jsonSchemas(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range commands(newRoot(&env{})) {
		f := c.Flags().Lookup("json")
		if f == nil {
			continue
		}
		m := schemaRE.FindStringSubmatch(f.Usage)
		if m == nil {
			t.Errorf("olimage %s: the help of --json (%q) names no schema; write \"print JSON (schema olimage.NAME/v1)\"", c.Name(), f.Usage)
			continue
		}
		out[c.Name()] = m[1]
	}
	return out
}

// TestCommandConventions checks what every command's help must have: a
// short line, examples, the exit statuses.
func TestCommandConventions(t *testing.T) {
	for _, c := range commands(newRoot(&env{})) {
		if c.Short == "" || c.Example == "" {
			t.Errorf("olimage %s: needs a Short line and an Example block", c.CommandPath())
		}
		if c.Parent().Name() == "olimage" && !strings.Contains(c.Long, "EXIT STATUS") {
			t.Errorf("olimage %s: help has no EXIT STATUS section", c.Name())
		}
	}
}

// TestCLIImportsNoExt4 checks that the commands reach ext4 only through
// the packages that read and write images (operand, builder, verify,
// extract): its errors included, which operand gives under its own name.
func TestCLIImportsNoExt4(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	const ext4 = "github.com/internetarchive/olimage/ext4"
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range f.Imports {
			if p, _ := strconv.Unquote(im.Path.Value); p == ext4 || strings.HasPrefix(p, ext4+"/") {
				t.Errorf("%s imports %s; use what operand, builder or verify export", name, p)
			}
		}
	}
}

// TestJSONSchemasDocumented checks that every --json document's schema is
// in docs/json.md, and that docs/json.md documents no schema that nothing
// prints.
func TestJSONSchemasDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "json.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^## .*`(olimage\\.[a-z-]+/v[0-9]+)`$").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	printed := map[string]bool{
		// Files rather than command output: inside and beside each image.
		"olimage.manifest/v1": true, "olimage.sidecar/v2": true,
	}
	for cmd, s := range jsonSchemas(t) {
		printed[s] = true
		if !documented[s] {
			t.Errorf("olimage %s --json prints %s, which docs/json.md has no section for (## `olimage %s --json`: `%s`)", cmd, s, cmd, s)
		}
	}
	for s := range documented {
		if !printed[s] {
			t.Errorf("docs/json.md documents %s, which no command's --json names", s)
		}
	}
}

// jsonElsewhere are the commands whose --json output needs what a unit
// test does not have (a VM's root file system, a registry); their
// packages' tests cover it.
var jsonElsewhere = map[string]string{
	"activate":   "changes a root file system",
	"deactivate": "changes a root file system",
	"recover":    "changes a root file system",
	"switch":     "changes a root file system",
	"status":     "reads an activated root file system",
	"push":       "needs a registry",
	"pull":       "needs a registry",
}

// TestJSONDocuments runs every command that prints JSON and checks that
// the document is an object whose schema field is the one its --json help
// names (and so, by TestJSONSchemasDocumented, one docs/json.md describes).
func TestJSONDocuments(t *testing.T) {
	img := release(t, "a", nil)
	out := t.TempDir()
	runs := map[string][]string{
		"roles":    {"-f", exampleFleet, "roles", "--json"},
		"validate": {"-f", exampleFleet, "validate", "--json"},
		"plan":     {"-f", exampleFleet, "plan", "ol-mem", "--json"},
		"explain":  {"-f", exampleFleet, "explain", "ol-web", "etc/nginx/nginx.conf", "--json"},
		"build":    {"-f", exampleFleet, "build", "ol-mem", "-o", out, "--json"},
		"inspect":  {"inspect", img, "--json"},
		"ls":       {"ls", img, "etc", "--json"},
		"verify":   {"verify", img, "--json"},
		"diff":     {"diff", img, img, "--json"},
		"fstab":    {"fstab", img, "--json"},
	}
	schemas := jsonSchemas(t)
	var names []string
	for name := range schemas {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		args, ok := runs[name]
		if !ok {
			if jsonElsewhere[name] == "" {
				t.Errorf("olimage %s --json: add a run of it to TestJSONDocuments (or, if it cannot run here, a reason to jsonElsewhere)", name)
			}
			continue
		}
		t.Run(name, func(t *testing.T) {
			stdout, stderr, code := olimage(t, args...)
			if code != 0 {
				t.Fatalf("olimage %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
			}
			var doc struct {
				Schema *string `json:"schema"`
			}
			if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
				t.Fatalf("olimage %s: not a JSON object: %v\n%.300s", strings.Join(args, " "), err, stdout)
			}
			got := "no schema field"
			if doc.Schema != nil {
				got = *doc.Schema
			}
			if got != schemas[name] {
				t.Errorf("olimage %s: got %s, want schema %q", strings.Join(args, " "), got, schemas[name])
			}
		})
	}
}
