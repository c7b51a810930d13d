package overlays

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/internetarchive/olimage/tree"
)

// TestDirHardLinksHashed reads a directory of hard-linked files: each
// pair becomes a file and a hard link to it, the file hashed. The walk
// and the hasher both edit an entry's rarely set fields (link key,
// xattrs, data runs); with -race this fails if they do so at once.
func TestDirHardLinksHashed(t *testing.T) {
	dir := t.TempDir()
	const n = 200
	files := map[string]any{
		"olimage.yaml": testFleetYAML,
		"roles/r.yaml": "overlays:\n  - name: base\n    dir: src\n",
	}
	for i := range n {
		files[fmt.Sprintf("src/opt/a%03d", i)] = fmt.Sprintf("content %d\n", i)
	}
	writeFiles(t, dir, files)
	for i := range n {
		if err := os.Link(filepath.Join(dir, fmt.Sprintf("src/opt/a%03d", i)), filepath.Join(dir, fmt.Sprintf("src/opt/b%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	res, err := mergeRole(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		a, b := res.Tree.Get(fmt.Sprintf("opt/a%03d", i)), res.Tree.Get(fmt.Sprintf("opt/b%03d", i))
		if a == nil || b == nil || a.Type != tree.File || b.Type != tree.Hardlink || b.Target != a.Path() {
			t.Fatalf("pair %d: got %v and %v, want a file and a hard link to it", i, a, b)
		}
		if want := tree.Digest(sha256.Sum256([]byte(fmt.Sprintf("content %d\n", i)))); !a.HasCheck || a.Digest != want {
			t.Fatalf("%s: digest %v (checked %v), want %v", a.Path(), a.Digest, a.HasCheck, want)
		}
	}
}
