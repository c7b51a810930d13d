package overlays

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/roles"
)

// noHang runs fn and fails the test if it has not returned after a long
// while: what it guards against is a read that never ends, not slowness.
func noHang(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s: still running after a minute", what)
	}
}

// Sources are read from inside the fleet directory, symlinks resolved,
// unless olimage.yaml allows a place outside it.
func TestSourcesOutsideFleet(t *testing.T) {
	out := t.TempDir() // the host, as far as the fleet is concerned
	writeFiles(t, out, map[string]any{"src/etc/ssh/ssh_host_key": "secret", "a.tar": mkTar(tarMember{name: "etc/shadow", body: "secret"})})
	tests := []struct {
		name  string
		role  string
		files map[string]any
		allow string // allow_outside globs that make it pass
	}{
		{name: "absolute dir", role: `overlays: [{name: a, dir: "` + out + `/src"}]`, allow: out + "/src"},
		{name: "relative dir leaving the fleet", role: `overlays: [{name: a, dir: "../` + filepath.Base(out) + `/src"}]`, allow: out + "/**"},
		{name: "dir symlinked to /", role: `overlays: [{name: a, dir: a}]`, files: map[string]any{"a": "-> /"}, allow: "/"},
		{name: "deploy source symlinked outside", role: `overlays: [{name: a, deploy: {service: s, source: src}}]`, files: map[string]any{"src": "-> " + out + "/src"}, allow: out + "/*"},
		{name: "tar symlinked outside", role: `overlays: [{name: a, tar: a.tar}]`, files: map[string]any{"a.tar": "-> " + out + "/a.tar"}, allow: out + "/a.tar"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "fleet")
			files := map[string]any{"olimage.yaml": testFleetYAML, "roles/r.yaml": tc.role}
			for k, v := range tc.files {
				files[k] = v
			}
			writeFiles(t, dir, files)
			if strings.Contains(tc.role, "../") {
				// The relative path leaves the fleet for out's name beside it.
				if err := os.Symlink(out, filepath.Join(dir, "..", filepath.Base(out))); err != nil {
					t.Fatal(err)
				}
			}
			_, err := mergeRole(t, dir)
			if !errors.Is(err, ErrOutside) {
				t.Fatalf("got %v, want an error wrapping ErrOutside", err)
			}
			for _, want := range []string{`roles/r.yaml:1: role r, overlay "a": `, "sources: {allow_outside: ["} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if tc.name == "dir symlinked to /" {
				return // allowing / would read the whole host
			}
			writeFiles(t, dir, map[string]any{"olimage.yaml": testFleetYAML + "sources: {allow_outside: [\"" + tc.allow + "\"]}\n"})
			if _, err := mergeRole(t, dir); err != nil {
				t.Fatalf("allowed by %s: %v", tc.allow, err)
			}
		})
	}
}

// An archive source that is no regular file is refused before it is
// read: /dev/zero never ends, a FIFO blocks until someone writes to it.
func TestArchiveNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "p.tar")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/dev/zero", fifo, dir} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			if _, err := os.Stat(p); err != nil {
				testenv.Skip(t, err.Error())
			}
			var err error
			noHang(t, "reading "+p, func() { _, err = testReader(t).readTar(p, "t") })
			if !errors.Is(err, ErrUnsafe) || !strings.HasPrefix(err.Error(), p+": ") || !strings.Contains(err.Error(), "not a regular file") {
				t.Fatalf("got %v, want an unsafe-entry error naming %s", err, p)
			}
		})
	}
}

// A directory source's file replaced after the walk listed it (by a
// symlink to a host secret, another file, a FIFO, or its directory by a
// symlink) is refused when read, when hashed or when written.
func TestDirSourceSwapped(t *testing.T) {
	host := t.TempDir()
	secret := filepath.Join(host, "shadow")
	if err := os.WriteFile(secret, []byte("root:$6$secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(host, "other")
	swaps := map[string]func(t *testing.T, p string){
		"symlink": func(t *testing.T, p string) {
			must(t, os.Remove(p))
			must(t, os.Symlink(secret, p))
		},
		"other file": func(t *testing.T, p string) {
			must(t, os.WriteFile(other, []byte("other file 14b"), 0o644))
			must(t, os.Rename(other, p))
		},
		"fifo": func(t *testing.T, p string) {
			must(t, os.Remove(p))
			must(t, syscall.Mkfifo(p, 0o644))
		},
		"directory symlink": func(t *testing.T, p string) {
			d := filepath.Dir(p)
			must(t, os.Rename(d, d+".old"))
			must(t, os.Symlink(host, d))
		},
	}
	noOpenat2 := func(int, string, int) (int, error) { return -1, syscall.ENOSYS }
	for name, swap := range swaps {
		// Without openat2, opening by path with O_NOFOLLOW, the identity
		// check alone must catch every swap.
		t.Run(name+" without openat2", func(t *testing.T) {
			defer func(f func(int, string, int) (int, error)) { openBelow = f }(openBelow)
			openBelow = noOpenat2
			src := t.TempDir()
			writeFiles(t, src, map[string]any{"etc/shadow": "placeholder!!!"})
			l, err := testReader(t).readDir(src, "a")
			if err != nil {
				t.Fatal(err)
			}
			swap(t, filepath.Join(src, "etc/shadow"))
			noHang(t, "opening", func() {
				var rc io.ReadCloser
				if rc, err = l.get("etc/shadow").Content.Open(); err == nil {
					rc.Close()
				}
			})
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("got %v, want ErrChanged", err)
			}
		})
		// "shadow" below etc/, so the directory swap lands on the secret.
		t.Run(name+" after hashing", func(t *testing.T) {
			src := t.TempDir()
			writeFiles(t, src, map[string]any{"etc/shadow": "placeholder!!!"})
			r := testReader(t)
			l, err := r.readDir(src, "a")
			if err != nil {
				t.Fatal(err)
			}
			e := l.get("etc/shadow")
			swap(t, filepath.Join(src, "etc/shadow"))
			var got []byte
			noHang(t, "opening", func() {
				var rc io.ReadCloser
				if rc, err = e.Content.Open(); err == nil {
					got, _ = io.ReadAll(rc)
					rc.Close()
				}
			})
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("got content %q and error %v, want ErrChanged", got, err)
			}
		})
		t.Run(name+" before hashing", func(t *testing.T) {
			src := t.TempDir()
			writeFiles(t, src, map[string]any{"etc/shadow": "placeholder!!!"})
			r := testReader(t)
			r.listed = func(p string) { swap(t, p) }
			var err error
			noHang(t, "reading the directory", func() { _, err = r.readDir(src, "a") })
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("got %v, want ErrChanged", err)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// countdown is a context that is done after its Err has said nil n times.
type countdown struct {
	context.Context
	left atomic.Int64
}

func (c *countdown) Err() error {
	if c.left.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// Merge looks at its context all along the way, reading directories and
// archives, hashing and merging, and stops with its error wherever it is
// done.
func TestMergeCancelled(t *testing.T) {
	dir := t.TempDir()
	files := map[string]any{
		"olimage.yaml": testFleetYAML,
		"roles/r.yaml": `overlays:
  - {name: d, dir: d}
  - {name: t, tar: t.tar, remove: ["opt/d/*/x1*"]}
`,
	}
	var members []tarMember
	for i := range 1000 {
		files[fmt.Sprintf("d/opt/d/%d/x%d", i%50, i)] = "x"
		members = append(members, tarMember{name: fmt.Sprintf("opt/t/%d/y%d", i%50, i), body: "y"})
	}
	files["t.tar"] = mkTar(members...)
	writeFiles(t, dir, files)
	f, err := roles.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := f.Role("r")
	count := &countdown{Context: context.Background()}
	count.left.Store(1 << 62)
	res, err := Merge(count, f, r)
	if err != nil {
		t.Fatal(err)
	}
	res.Close()
	calls := 1<<62 - count.left.Load()
	if calls < 2000/checkEvery {
		t.Fatalf("a merge of 2000 entries looked at its context %d times", calls)
	}
	for _, k := range []int64{0, 1, calls / 4, calls / 2, calls * 3 / 4, calls - 2} {
		c := &countdown{Context: context.Background()}
		c.left.Store(k)
		res, err := Merge(c, f, r)
		if err == nil {
			res.Close()
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("done after %d of %d looks: got %v, want context.Canceled", k, calls, err)
		}
	}
}
