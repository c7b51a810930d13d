package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/overlays"
)

// planBytesPerEntry is the bound TestPlanBytesPerEntry holds a planned
// role to, by the kind of its source: the heap its tree, manifest and
// layout keep, per entry. The role of that test kept 830 to 840 bytes an
// entry while trees indexed every path in a map and ext4 planning made
// each inode its own allocation, about 690 until an entry's rarely set
// fields moved behind one pointer, about 560 until content digests were
// held as 32 bytes rather than 64 hex digits, about 530 until entries
// shared their owner and group names, about 480 (.tar.zst) and 445
// (directory, whose paths no longer keep the source's absolute path
// alive) until they shared their overlay's name with them, about 510 and
// 427 while each inode plan had its runs and extents as slices of their
// own, about 370 and 285 until the spool let go of its 2 MiB of buffers
// once an archive was read (a fixed cost, but 100 bytes an entry of this
// test's 20,000), and about 265 and 285 since; bench/README.md has the
// figures and how to measure it.
var planBytesPerEntry = map[string]float64{"tar": 290, "dir": 320}

// TestPlanBytesPerEntry plans a role of 20,000 one-byte files, from a
// .tar.zst and from a directory, and checks the heap the planned role
// holds (merged tree, manifest and ext4 layout, after a collection) per
// entry. Run with -v for the figure. The same bound holds for paths of
// 15 bytes (opt/d0000/f0000) and of 100 (the files 85 bytes deep, as in
// a virtualenv): entries of one directory share its path, so the bytes
// an entry holds do not grow with the depth of its directory. When each
// entry held its whole path, the long paths cost about 100 bytes an
// entry more.
func TestPlanBytesPerEntry(t *testing.T) {
	const dirs, per = 20, 1000
	long := "opt/openlibrary/venv/lib/python3.12/site-packages/a_package_with_a_long_name/submodules"
	for _, kind := range []string{"tar", "dir"} {
		for _, under := range []string{"opt", long} {
			name := kind
			if under == long {
				name += "/long"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				src := filepath.Join(dir, "src")
				if kind == "tar" {
					src += ".tar.zst"
					testfs.WriteOneByteTarZstUnder(t, src, under, dirs, per)
				} else {
					writeOneByteDir(t, src, under, dirs, per)
				}
				fl := filepath.Join(dir, "fleet")
				if err := os.MkdirAll(filepath.Join(fl, "roles"), 0o755); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Join(fl, "olimage.yaml"), fmt.Sprintf("fleet: mem\nepoch: 2024-01-01T00:00:00Z\nsources: {allow_outside: [%q]}\n", src))
				writeFile(t, filepath.Join(fl, "roles", "r.yaml"), fmt.Sprintf("overlays:\n  - {name: src, %s: %q}\n", kind, src))
				f, r := loadRole(t, fl, "r")

				tmp := t.TempDir()
				held, p := testfs.HeapHeld(func() *prepared {
					p, err := prepare(context.Background(), f, r, "", overlays.Options{TmpDir: tmp}, false)
					if err != nil {
						t.Fatal(err)
					}
					return p
				})
				defer p.close()
				n := p.tree.Len()
				if e := p.tree.Entries[n-1]; len(e.Path()) != len(under)+12 {
					t.Fatalf("last path %q, want one %d bytes long", e.Path(), len(under)+12)
				}
				got := float64(held) / float64(n)
				t.Logf("%d entries: %.0f bytes an entry of planned role", n, got)
				if got > planBytesPerEntry[kind] {
					t.Errorf("a planned role of %d entries holds %.0f bytes an entry, want at most %.0f", n, got, planBytesPerEntry[kind])
				}
			})
		}
	}
}

func writeFile(t *testing.T, name, text string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeOneByteDir writes the tree WriteOneByteTarZstUnder archives.
func writeOneByteDir(t *testing.T, root, under string, dirs, per int) {
	t.Helper()
	for d := range dirs {
		dir := filepath.Join(root, under, fmt.Sprintf("d%04d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range per {
			writeFile(t, filepath.Join(dir, fmt.Sprintf("f%04d", i)), string([]byte{byte(i)}))
		}
	}
}
