package overlays

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
)

// Roles merged with one Shared read a source they share once, and each
// gets the tree it would get alone: a rule of one role does not reach
// the entries of the other.
func TestSharedReadsOnce(t *testing.T) {
	dir := t.TempDir()
	testfs.WriteFiles(t, dir, map[string]string{
		"olimage.yaml":      "fleet: t\nowners: {app: 999}\ngroups: {app: 999}\n",
		"roles/a.yaml":      "rules:\n  - {path: opt/x/*, owner: app, mode: \"0600\"}\noverlays:\n  - {name: base, dir: base}\n  - {name: t, tar: base.tar}\n",
		"roles/b.yaml":      "overlays:\n  - {name: base, dir: base}\n  - {name: t, tar: base.tar}\n  - name: own\n    files:\n      - {path: opt/own, content: b}\n",
		"base/opt/x/one":    "1",
		"base/opt/x/two":    "22",
		"base/opt/y/three":  "333",
		"base/etc/app.conf": "conf",
	})
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	must(t, tw.WriteHeader(&tar.Header{Name: "opt/t/inner", Typeflag: tar.TypeReg, Mode: 0o644, Size: 10}))
	tw.Write([]byte("tar member"))
	must(t, tw.Close())
	must(t, os.WriteFile(filepath.Join(dir, "base.tar"), tb.Bytes(), 0o644))
	f, err := roles.Load(dir)
	must(t, err)
	ctx := context.Background()
	sh := NewShared(ctx, f, t.TempDir())
	defer sh.Close()
	// a and b are the roles that list the sources: after b, the last,
	// the Shared holds neither (b took the layers themselves), and a
	// third merge reads them again.
	for i, name := range []string{"a", "b", "a"} {
		alone, err := Merge(ctx, f, f.Roles[name])
		must(t, err)
		shared, err := MergeWith(ctx, f, f.Roles[name], Options{Shared: sh})
		must(t, err)
		if d := cmp.Diff(sharedListing(alone.Tree), sharedListing(shared.Tree)); d != "" {
			t.Errorf("role %s: tree with Shared differs (-alone +shared):\n%s", name, d)
		}
		if d := cmp.Diff(alone.Inputs, shared.Inputs); d != "" {
			t.Errorf("role %s: inputs differ (-alone +shared):\n%s", name, d)
		}
		alone.Close()
		shared.Close()
		if want := []int{2, 2, 4}[i]; sh.reads != want {
			t.Errorf("after merge %d (role %s): read %d sources, want %d", i+1, name, sh.reads, want)
		}
		if i == 1 && len(sh.items) != 0 {
			t.Errorf("after the last role that lists them, the Shared holds %d sources, want none", len(sh.items))
		}
	}
}

// sharedListing is what a tree says of each entry, content read back.
func sharedListing(t *tree.Tree) []string {
	var out []string
	for _, e := range t.Entries {
		s := e.Path() + " " + e.Type.String() + " " + e.Owner() + " " + e.Digest.String() + " " + e.Overlay() + " " + e.OwnerRule() + " " + e.ModeRule()
		s += " " + string(rune('0'+e.Mode>>6&7)) + string(rune('0'+e.Mode>>3&7)) + string(rune('0'+e.Mode&7))
		if e.Content != nil {
			rc, err := e.Content.Open()
			if err != nil {
				s += " open: " + err.Error()
			} else {
				b := make([]byte, 64)
				n, _ := rc.Read(b)
				rc.Close()
				s += " " + string(b[:n])
			}
		}
		out = append(out, s)
	}
	return out
}
