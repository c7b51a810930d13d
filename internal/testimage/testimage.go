// Package testimage builds small real images for the tests of the
// packages that read them: a fleet of one role, written with
// internal/testfs, built by the builder. It checks nothing itself beyond
// e2fsck and is imported only by tests.
package testimage

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/internetarchive/olimage/builder"
	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/roles"
)

// Role is the name of the one role Fleet declares.
const Role = "r"

// Fleet writes a fleet whose role r has one overlay, the directory of
// files (slash-separated paths below the volume root, to content), and
// returns the fleet's directory.
func Fleet(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	testfs.WriteFiles(t, filepath.Join(dir, "tree"), files)
	testfs.WriteFiles(t, dir, map[string]string{
		"olimage.yaml":            "fleet: t\nepoch: 2024-01-01T00:00:00Z\n",
		"roles/" + Role + ".yaml": "overlays:\n  - {name: tree, dir: tree}\n",
	})
	return dir
}

// Build builds role r of the fleet in dir into a new directory with
// opts (Output is set here), checks the image with e2fsck -fn and returns
// the builder's result: the image and its sidecar.
func Build(t testing.TB, dir string, opts builder.Options) *builder.Result {
	t.Helper()
	f, err := roles.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Role(Role)
	if err != nil {
		t.Fatal(err)
	}
	opts.Output = t.TempDir()
	res, err := builder.Build(context.Background(), f, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Fsck(t, res.Image)
	return res
}
