package activate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// maxFindings bounds how many mismatches one verification lists.
const maxFindings = 20

// verifyEntries checks every entry of the manifest against the volume
// mounted at dir: type, mode, owner, size, link text and, for every file,
// the sha256 of its content, hashed on every core. A volume that was
// damaged or changed since it was built is refused before any link points
// into it.
func verifyEntries(dir string, m *manifest.Manifest) []error {
	type finding struct {
		i   int // the entry's index: findings come out in manifest order
		err error
	}
	var (
		found []finding
		mu    sync.Mutex
		bad   = map[string]bool{} // mismatched directories: skip what is below
	)
	report := func(i int, err error) {
		mu.Lock()
		found = append(found, finding{i, err})
		mu.Unlock()
	}
	type job struct {
		i      int
		path   string
		digest string
	}
	jobs := make(chan job, 64)
	var wg sync.WaitGroup
	for i := 0; i < runtime.GOMAXPROCS(0); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for j := range jobs {
				if err := checkContent(j.path, j.digest, buf); err != nil {
					report(j.i, err)
				}
			}
		}()
	}
	for i, me := range m.Entries {
		e, err := manifest.ToEntry(me)
		if err != nil {
			report(i, fmt.Errorf("%s: %w: %w", filepath.Join(dir, manifest.Path), err, ErrVerify))
			continue
		}
		if below(bad, e.Path) {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		fi, err := os.Lstat(p)
		if err != nil {
			report(i, fmt.Errorf("%s: %w: %w", p, err, ErrVerify))
			bad[e.Path] = true
			continue
		}
		if msg := metaMismatch(p, fi, e); msg != "" {
			report(i, fmt.Errorf("%s: %s: %w", p, msg, ErrVerify))
			bad[e.Path] = true
			continue
		}
		if e.Type == tree.File || e.Type == tree.Hardlink {
			jobs <- job{i, p, e.Digest}
		}
	}
	close(jobs)
	wg.Wait()
	slices.SortFunc(found, func(a, b finding) int { return a.i - b.i })
	errs := make([]error, len(found))
	for k, f := range found {
		errs[k] = f.err
	}
	if len(errs) > maxFindings {
		n := len(errs) - maxFindings
		errs = append(errs[:maxFindings], fmt.Errorf("%s: %d more differences from the manifest: %w", dir, n, ErrVerify))
	}
	return errs
}

// below reports whether p is inside a directory already found wrong.
func below(bad map[string]bool, p string) bool {
	for d := tree.Parent(p); d != ""; d = tree.Parent(d) {
		if bad[d] {
			return true
		}
	}
	return false
}

func metaMismatch(p string, fi fs.FileInfo, e *tree.Entry) string {
	var got tree.Type
	switch m := fi.Mode(); {
	case m.IsRegular():
		got = tree.File
	case m.IsDir():
		got = tree.Dir
	case m&fs.ModeSymlink != 0:
		got = tree.Symlink
	}
	want := e.Type
	if want == tree.Hardlink {
		want = tree.File
	}
	if got != want {
		return fmt.Sprintf("the manifest says %s, the volume holds %s", e.Type, describe(p, fi))
	}
	var d []string
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if mode := uint32(st.Mode) & tree.ModeMask; got != tree.Symlink && mode != e.Mode {
			d = append(d, fmt.Sprintf("mode %04o, manifest %04o", mode, e.Mode))
		}
		if st.Uid != e.UID || st.Gid != e.GID {
			d = append(d, fmt.Sprintf("owner %d:%d, manifest %d:%d", st.Uid, st.Gid, e.UID, e.GID))
		}
	}
	if got == tree.File && fi.Size() != e.Size {
		d = append(d, fmt.Sprintf("size %d, manifest %d", fi.Size(), e.Size))
	}
	if got == tree.Symlink {
		if t, err := os.Readlink(p); err != nil || t != e.Target {
			d = append(d, fmt.Sprintf("links to %q, manifest %q", t, e.Target))
		}
	}
	return strings.Join(d, "; ")
}

func checkContent(p, digest string, buf []byte) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", p, err, ErrVerify)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
		return fmt.Errorf("%s: %w: %w", p, err, ErrVerify)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("%s: content sha256 %.12s, manifest %.12s: %w", p, got, digest, ErrVerify)
	}
	return nil
}
