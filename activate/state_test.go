package activate

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/manifest"
)

// editManifest rewrites the manifest of the volume at dir with edit.
func editManifest(t *testing.T, dir string, edit func(*manifest.Manifest)) {
	t.Helper()
	testfs.EditJSON(t, filepath.Join(dir, manifest.Path), edit)
}

// withState rewrites the manifest of the volume at dir to declare st.
func withState(t *testing.T, dir string, st []manifest.StatePath) {
	t.Helper()
	editManifest(t, dir, func(m *manifest.Manifest) { m.Activation.State = st })
}

func TestState(t *testing.T) {
	root, _ := newRoot(t, v1)
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if os.Geteuid() == 0 {
		uid, gid = 2000, 105 // the fleet's ids, which need not exist here
	}
	withState(t, filepath.Join(root, "1"), []manifest.StatePath{
		{Path: "var/lib/postgresql/15/main", UID: uid, GID: gid, Mode: "0700"},
		{Path: "var/lib/dpkg", UID: uid, GID: gid, Mode: "0700"}, // there already
		{Path: "srv/covers", UID: uid, GID: gid, Mode: "2775"},
	})
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/mine"), []byte("data"), 0o600)
	dpkg, _ := os.Stat(filepath.Join(root, "var/lib/dpkg"))

	rep := activate(t, root, Options{})
	var made []string
	for _, c := range rep.Changes {
		if c.Op == OpState {
			made = append(made, c.Path)
		}
	}
	if !slices.Equal(made, []string{"var/lib/postgresql/15/main", "srv/covers"}) {
		t.Errorf("state made %q", made)
	}
	for _, tc := range []struct {
		path string
		mode os.FileMode
	}{{"var/lib/postgresql/15/main", os.ModeDir | 0o700}, {"srv/covers", os.ModeDir | os.ModeSetgid | 0o775}} {
		fi, err := os.Stat(filepath.Join(root, tc.path))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != tc.mode || st.Uid != uid || st.Gid != gid {
			t.Errorf("/%s: %v %d:%d, want %v %d:%d", tc.path, fi.Mode(), st.Uid, st.Gid, tc.mode, uid, gid)
		}
	}
	if fi, _ := os.Stat(filepath.Join(root, "var/lib/dpkg")); fi.Mode() != dpkg.Mode() {
		t.Errorf("an existing state directory changed mode: %v, was %v", fi.Mode(), dpkg.Mode())
	}
	// Services wrote data; activate again and deactivate leave it.
	os.WriteFile(filepath.Join(root, "var/lib/postgresql/15/main/PG_VERSION"), []byte("15\n"), 0o600)
	if rep := activate(t, root, Options{}); rep.Changed() {
		t.Errorf("re-activate: %q", ops(rep))
	}
	deactivate(t, root)
	for _, p := range []string{"var/lib/postgresql/15/main/PG_VERSION", "var/lib/dpkg/mine", "srv/covers"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("after deactivate: %v", err)
		}
	}

	// A plan's state outside the places for state is refused before
	// anything changes.
	for _, bad := range []string{"etc/cron.d", "root/.ssh", "home/ol", "opt/openlibrary", "var/lib/olimage", "../x"} {
		withState(t, filepath.Join(root, "1"), []manifest.StatePath{{Path: bad, Mode: "0755"}})
		before := snapshot(t, root)
		if _, err := Activate(ctx, Options{Root: root}); !errors.Is(err, ErrUnsafe) {
			t.Errorf("state %s: got %v, want %v", bad, err, ErrUnsafe)
		}
		check(t, root, before, "after a refused state path")
	}
	// A file where a state directory goes is reported, not replaced.
	withState(t, filepath.Join(root, "1"), []manifest.StatePath{{Path: "var/lib/dpkg/mine", Mode: "0755"}})
	if _, err := Activate(ctx, Options{Root: root}); err == nil {
		t.Error("a file at a state path: got no error")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "var/lib/dpkg/mine")); string(b) != "data" {
		t.Errorf("the file at a state path now holds %q", b)
	}
}
