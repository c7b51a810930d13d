package extract

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/internetarchive/olimage/tree"
)

type text string

func (s text) Open() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(string(s))), nil }

func dir(p string) *tree.Entry { return (&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath(p) }

func file(p, body string) *tree.Entry {
	return (&tree.Entry{Type: tree.File, Mode: 0o640, Size: int64(len(body)), Content: text(body)}).WithPath(p)
}

func link(p, target, body string) *tree.Entry {
	e := file(p, body)
	e.Type, e.Target = tree.Hardlink, target
	return e
}

func mkTree(t *testing.T, entries ...*tree.Entry) *tree.Tree {
	t.Helper()
	tr, err := tree.New(entries)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestTree(t *testing.T) {
	tr := mkTree(t,
		dir("opt"), dir("opt/a"), file("opt/a/f", "hi"), dir("opt/b"), link("opt/b/g", "opt/a/f", "hi"), link("opt/b/h", "opt/a/f", "hi"),
		(&tree.Entry{Type: tree.Symlink, Mode: 0o777, Target: "a/f"}).WithPath("opt/l"),
		(&tree.Entry{Type: tree.Dir, Mode: 0o555}).WithPath("opt/ro"),
		file("opt/ro/x", "x"),
	)
	t.Run("all", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		res, err := Tree(context.Background(), tr, "", out)
		if err != nil {
			t.Fatal(err)
		}
		if res.Entries != tr.Len() || res.Bytes != 3 {
			t.Errorf("got %d entries and %d bytes, want %d and 3", res.Entries, res.Bytes, tr.Len())
		}
		if a, g := ino(t, filepath.Join(out, "opt/a/f")), ino(t, filepath.Join(out, "opt/b/g")); a != g {
			t.Errorf("opt/b/g is inode %d, want opt/a/f's %d", g, a)
		}
		if got, err := os.Readlink(filepath.Join(out, "opt/l")); err != nil || got != "a/f" {
			t.Errorf("opt/l: got %q, %v; want a/f", got, err)
		}
		if fi, err := os.Stat(filepath.Join(out, "opt/ro")); err != nil || fi.Mode().Perm() != 0o555 {
			t.Errorf("opt/ro: got %v, %v; want mode 0555", fi.Mode(), err)
		}
		os.Chmod(filepath.Join(out, "opt/ro"), 0o755) // so the test can clean up
	})
	t.Run("prefix whose hard links lead outside it", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		if _, err := Tree(context.Background(), tr, "opt/b", out); err != nil {
			t.Fatal(err)
		}
		g, h := filepath.Join(out, "opt/b/g"), filepath.Join(out, "opt/b/h")
		if data, err := os.ReadFile(g); err != nil || string(data) != "hi" {
			t.Errorf("opt/b/g: got %q, %v; want hi", data, err)
		}
		if ino(t, g) != ino(t, h) {
			t.Errorf("opt/b/g and opt/b/h are not one file")
		}
		if fi, err := os.Stat(g); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("opt/b/g: got %v, %v; want mode 0640", fi.Mode(), err)
		}
		if _, err := os.Lstat(filepath.Join(out, "opt/a")); !os.IsNotExist(err) {
			t.Errorf("opt/a extracted with prefix opt/b (%v)", err)
		}
	})
}

// TestRefused checks that nothing is written through a symlink or outside
// the directory, and that a failed extraction leaves nothing behind.
func TestRefused(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name    string
		entries []*tree.Entry
		wantErr string
	}{
		{"below a symlink", []*tree.Entry{
			dir("opt"), (&tree.Entry{Type: tree.Symlink, Mode: 0o777, Target: outside}).WithPath("opt/x"), file("opt/x/evil", "x"),
		}, "opt/x/evil: parent opt/x is not a directory of the tree"},
		{"below a missing directory", []*tree.Entry{
			dir("opt"), file("opt/a", "a"), file("opt/y/evil", "x"),
		}, "opt/y/evil: parent opt/y is not a directory of the tree"},
		{"dot dot", []*tree.Entry{dir("opt"), file("opt/../../evil", "x")}, `"opt/../../evil": not a path inside the volume`},
		{"absolute", []*tree.Entry{file("/evil", "x")}, `"/evil": not a path inside the volume`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			_, err := Tree(context.Background(), mkTree(t, tc.entries...), "", out)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want %q", err, tc.wantErr)
			}
			if _, err := os.Lstat(out); !os.IsNotExist(err) {
				t.Errorf("%s left behind (%v)", out, err)
			}
			if des, _ := os.ReadDir(outside); len(des) != 0 {
				t.Errorf("wrote %s outside the directory", des[0].Name())
			}
		})
	}
}

// TestCancelled checks that an interrupted extraction into an existing
// empty directory empties it again and keeps it.
func TestCancelled(t *testing.T) {
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := file("opt/a", "a")
	first.Content = cancelOnOpen{text("a"), cancel}
	tr := mkTree(t, dir("opt"), first, file("opt/b", "b"))
	if _, err := Tree(ctx, tr, "", out); !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v, want %v", err, context.Canceled)
	}
	des, err := os.ReadDir(out)
	if err != nil || len(des) != 0 {
		t.Errorf("%s: got %d entries (%v), want it empty", out, len(des), err)
	}
}

// cancelOnOpen calls before, then opens its content.
type cancelOnOpen struct {
	tree.Content
	before func()
}

func (c cancelOnOpen) Open() (io.ReadCloser, error) {
	c.before()
	return c.Content.Open()
}

// swap is content whose reading replaces a directory already extracted
// with a symlink out of the extraction, as another process could.
type swap struct{ dir, outside string }

func (s swap) Open() (io.ReadCloser, error) {
	if err := os.Rename(s.dir, s.dir+".moved"); err != nil {
		return nil, err
	}
	if err := os.Symlink(s.outside, s.dir); err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader("a")), nil
}

// TestSwappedForSymlink: a directory the extraction made that becomes a
// symlink out of it meanwhile is not written through.
func TestSwappedForSymlink(t *testing.T) {
	outside := t.TempDir()
	out := filepath.Join(t.TempDir(), "out")
	a := file("opt/a", "a")
	a.Content = swap{filepath.Join(out, "opt"), outside}
	_, err := Tree(context.Background(), mkTree(t, dir("opt"), a, file("opt/b", "evil")), "", out)
	if err == nil {
		t.Fatal("extracted through a symlink out of the directory")
	}
	if des, _ := os.ReadDir(outside); len(des) != 0 {
		t.Errorf("wrote %s outside the directory (%v)", des[0].Name(), err)
	}
}
