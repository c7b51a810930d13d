package builder

import (
	"crypto/sha256"
	"os"
	"path"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	dext4 "github.com/diskfs/go-diskfs/filesystem/ext4"

	"github.com/internetarchive/olimage/tree"
)

// TestDiskfsReadsImage reads a built image with go-diskfs's ext4 reader,
// an implementation independent of ours, and compares what it sees with
// the tree: names, types, sizes, content and symlink targets. (Its
// FileInfo carries no permission bits, so modes are left to the mount test.)
func TestDiskfsReadsImage(t *testing.T) {
	res, merged := buildMerged(t, "ol-web")

	img, err := os.Open(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	dfs, err := dext4.Read(file.New(img, true), res.Size, 0, 512)
	if err != nil {
		t.Fatalf("go-diskfs cannot read the image: %v", err)
	}

	// go-diskfs has looped forever on some images; never let it hang the suite.
	done := make(chan struct{})
	seen := map[string]bool{}
	go func() {
		defer close(done)
		var walk func(dir string)
		walk = func(dir string) {
			des, err := dfs.ReadDir(dir)
			if err != nil {
				t.Errorf("go-diskfs ReadDir %s: %v", dir, err)
				return
			}
			for _, de := range des {
				name := de.Name()
				if name == "." || name == ".." || name == "lost+found" {
					continue
				}
				p := path.Join(dir, name)
				rel := p
				if rel == tree.OlimageDir {
					continue
				}
				seen[rel] = true
				e := merged.Tree.Get(rel)
				if e == nil {
					t.Errorf("go-diskfs sees %s, which is not in the tree", rel)
					continue
				}
				info, err := de.Info()
				if err != nil {
					t.Errorf("%s: %v", rel, err)
					continue
				}
				switch e.Type {
				case tree.Dir:
					if !de.IsDir() {
						t.Errorf("%s: go-diskfs sees mode %v, want a directory", rel, info.Mode())
					}
					walk(p)
				case tree.Symlink:
					target, err := dfs.ReadLink(p)
					if err != nil || target != e.Target {
						t.Errorf("%s: go-diskfs reads link %q (%v), want %q", rel, target, err, e.Target)
					}
				case tree.File, tree.Hardlink:
					data, err := dfs.ReadFile(p)
					sum := sha256.Sum256(data)
					if err != nil || tree.Digest(sum) != e.Digest || info.Size() != e.Size {
						t.Errorf("%s: go-diskfs reads %d bytes (size %d, %v), want %d bytes with sha256 %s", rel, len(data), info.Size(), err, e.Size, e.Digest)
					}
				}
			}
		}
		walk(".")
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("go-diskfs did not finish reading the image in 2 minutes")
	}
	for _, e := range merged.Tree.Entries {
		if !seen[e.Path()] {
			t.Errorf("%s: in the tree, go-diskfs does not see it", e.Path())
		}
	}
}
