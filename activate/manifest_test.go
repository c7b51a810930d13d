package activate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/manifest"
)

// TestManifestRead: activate, a dry run and status read the volume's
// manifest only as a regular file of bounded size reached through no
// symlink: a symlink to /dev/zero would grow memory without end, one to a
// host file would read it.
func TestManifestRead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root, mp string)
		msg   string
	}{
		{"symlink to /dev/zero", func(t *testing.T, root, mp string) {
			os.Remove(mp)
			os.Symlink("/dev/zero", mp)
		}, "manifest.json: refused: a symlink to /dev/zero"},
		{"symlink to a host file", func(t *testing.T, root, mp string) {
			// A valid manifest, outside the volume.
			os.Rename(mp, filepath.Join(root, "host.json"))
			os.Symlink(filepath.Join(root, "host.json"), mp)
		}, "manifest.json: refused: a symlink to "},
		{"directory symlinked", func(t *testing.T, root, mp string) {
			os.Rename(filepath.Dir(mp), filepath.Join(root, "elsewhere"))
			os.Symlink("../elsewhere", filepath.Dir(mp))
		}, ".olimage: refused: a symlink to ../elsewhere"},
		{"device", func(t *testing.T, root, mp string) {
			os.Remove(mp)
			if err := syscall.Mknod(mp, syscall.S_IFCHR|0o644, 1<<8|5); err != nil { // 1,5: /dev/zero
				testenv.Skip(t, "mknod: "+err.Error())
			}
		}, "manifest.json: refused: not a regular file"},
		{"fifo", func(t *testing.T, root, mp string) {
			os.Remove(mp)
			if err := syscall.Mkfifo(mp, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "manifest.json: refused: not a regular file"},
		{"too large", func(t *testing.T, root, mp string) {
			if err := os.Truncate(mp, MaxManifestSize+1); err != nil { // sparse
				t.Fatal(err)
			}
		}, "manifest.json: refused: 268435457 bytes, more than the 268435456 allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := newRoot(t, v1)
			tc.setup(t, root, filepath.Join(root, "1", manifest.Path))
			before := snapshot(t, root)
			for _, o := range []Options{{}, {DryRun: true}, {Force: true}} {
				o.Root = root
				_, err := Activate(ctx, o)
				if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("activate %+v: got %v, want %v containing %q", o, err, ErrUnsafe, tc.msg)
				}
			}
			check(t, root, before, "after activate")
			st, err := ReadStatus(Options{Root: root, Volume: "/1"})
			if err != nil {
				t.Fatalf("status: %v", err)
			}
			if got := strings.Join(st.Findings, "\n"); !strings.Contains(got, tc.msg) {
				t.Errorf("status findings %q, want one containing %q", st.Findings, tc.msg)
			}
		})
	}
}
