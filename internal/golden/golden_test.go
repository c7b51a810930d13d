package golden

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const importPath = "github.com/internetarchive/olimage/internal/golden"

// TestEveryPackageDefinesUpdate checks that each package with tests links
// this one: go test ./... -update fails with "flag provided but not
// defined" in any test binary that does not.
func TestEveryPackageDefinesUpdate(t *testing.T) {
	root := filepath.Join("..", "..")
	imports := map[string]bool{} // directory -> some test file imports golden
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		dir := filepath.Dir(p)
		if dir == filepath.Join(root, "internal", "golden") {
			return nil // this package defines the flag
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		imports[dir] = imports[dir] || false
		for _, im := range f.Imports {
			if v, _ := strconv.Unquote(im.Path.Value); v == importPath {
				imports[dir] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) < 2 {
		t.Fatalf("found tests in %d directories under %s; is the walk rooted right?", len(imports), root)
	}
	for dir, ok := range imports {
		if !ok {
			rel, _ := filepath.Rel(root, dir)
			t.Errorf("%s: no test file imports %s; add update_test.go with\n\timport _ %q", rel, importPath, importPath)
		}
	}
}
