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

	"github.com/internetarchive/olimage/internal/par"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// maxFindings bounds how many mismatches one verification lists.
const maxFindings = 20

// verifyEntries checks every entry of the manifest against the volume
// mounted at dir: type, mode, owner, size and link text in one pass, then
// the sha256 of every file's content, hashed on every core. A volume that
// was damaged or changed since it was built is refused before any link
// points into it. The findings come in manifest order, however the
// hashing interleaves.
func verifyEntries(dir string, m *manifest.Manifest) []error {
	type finding struct {
		i   int // the entry's index
		err error
	}
	var (
		found []finding
		files []int               // entries whose content is hashed
		bad   = map[string]bool{} // mismatched directories: skip what is below
	)
	for i, me := range m.Entries {
		e, err := manifest.ToEntry(me)
		if err != nil {
			found = append(found, finding{i, fmt.Errorf("%s: %w: %w", filepath.Join(dir, manifest.Path), err, ErrVerify)})
			continue
		}
		if below(bad, e.Path()) {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(e.Path()))
		fi, err := os.Lstat(p)
		if err != nil {
			found = append(found, finding{i, fmt.Errorf("%s: %w: %w", p, err, ErrVerify)})
			bad[e.Path()] = true
			continue
		}
		if msg := metaMismatch(p, fi, e); msg != "" {
			found = append(found, finding{i, fmt.Errorf("%s: %s: %w", p, msg, ErrVerify)})
			bad[e.Path()] = true
			continue
		}
		if e.Type == tree.File || e.Type == tree.Hardlink {
			files = append(files, i)
		}
	}
	workers := runtime.GOMAXPROCS(0)
	bufs := make([][]byte, workers)
	var mu sync.Mutex
	par.Each(len(files), workers, nil, func(w, k int) {
		if bufs[w] == nil {
			bufs[w] = make([]byte, 256<<10)
		}
		e := &m.Entries[files[k]]
		if err := checkContent(filepath.Join(dir, filepath.FromSlash(e.Path)), e.SHA256, bufs[w]); err != nil {
			mu.Lock()
			found = append(found, finding{files[k], err})
			mu.Unlock()
		}
	})
	slices.SortStableFunc(found, func(a, b finding) int { return a.i - b.i })
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
