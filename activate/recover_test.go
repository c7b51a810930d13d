package activate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRecover destroys the journal of an activated root in the ways it
// can be lost, and recovers the root from the backups: the originals are
// back, the links into the volume gone, a dry run first shows that and
// changes nothing.
func TestRecover(t *testing.T) {
	for _, tc := range []struct {
		name    string
		destroy func(t *testing.T, p string)
		broken  string // the journal kept aside, if any
	}{
		{"removed", func(t *testing.T, p string) { os.Remove(p) }, ""},
		{"truncated", func(t *testing.T, p string) { os.Truncate(p, 10) }, `file:{
  "schem`},
		{"garbage", func(t *testing.T, p string) { os.WriteFile(p, []byte("\x00\x01not json"), 0o644) }, "file:\x00\x01not json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, base := newRoot(t, v1)
			activate(t, root, Options{})
			tc.destroy(t, filepath.Join(root, JournalFile))
			if _, err := Deactivate(ctx, Options{Root: root}); tc.broken != "" && err == nil {
				t.Fatalf("deactivate with a broken journal succeeded")
			}
			before := snapshot(t, root)
			rep, err := Recover(ctx, Options{Root: root, DryRun: true})
			if err != nil {
				t.Fatalf("recover --dry-run: %v", err)
			}
			check(t, root, before, "after recover --dry-run")
			want := []string{
				"unlink etc/nginx/nginx.conf -> /1/etc/nginx/nginx.conf",
				"restore etc/nginx/nginx.conf => " + bk(v1.uuid, "etc/nginx/nginx.conf"),
				"unlink opt/petabox -> /1/opt/petabox",
				"restore opt/petabox => " + bk(v1.uuid, "opt/petabox"),
				"unlink opt/openlibrary/deploys -> /1/opt/openlibrary/deploys",
				"unlink opt/openlibrary/olsystem -> /1/opt/openlibrary/deploys/olsystem/aaa",
				"unlink etc/cron.d/openlibrary -> /1/etc/cron.d/openlibrary",
				"unlink etc/new/sub/x.conf -> /1/etc/new/sub/x.conf",
			}
			if diff := cmp.Diff(want, ops(rep)); diff != "" {
				t.Errorf("recover --dry-run steps (-want +got):\n%s", diff)
			}
			rep, err = Recover(ctx, Options{Root: root})
			if err != nil {
				t.Fatalf("recover: %v", err)
			}
			if diff := cmp.Diff(want, ops(rep)); diff != "" {
				t.Errorf("recover steps (-want +got):\n%s", diff)
			}
			// Directories activate made stay: without the journal no
			// one knows which they are.
			after := edit(base, "etc/new/sub=dir", "opt/openlibrary=dir")
			if tc.broken != "" {
				after = edit(after, BrokenJournal+"="+tc.broken)
			}
			check(t, root, after, "after recover")
			// The next activation starts a journal afresh.
			activate(t, root, Options{})
			deactivate(t, root)
			check(t, root, after, "after activate and deactivate")
		})
	}
}

// TestRecoverRefused: with the journal intact, deactivate is the way; a
// path taken by something else since refuses the whole recovery.
func TestRecoverRefused(t *testing.T) {
	root, _ := newRoot(t, v1)
	activate(t, root, Options{})
	if _, err := Recover(ctx, Options{Root: root}); !errors.Is(err, ErrJournalIntact) {
		t.Fatalf("recover with the journal intact: got %v, want %v", err, ErrJournalIntact)
	}
	os.Remove(filepath.Join(root, JournalFile))
	p := filepath.Join(root, "etc/nginx/nginx.conf")
	os.Remove(p)
	os.WriteFile(p, []byte("mine\n"), 0o644)
	before := snapshot(t, root)
	for _, o := range []Options{{Root: root, DryRun: true}, {Root: root}} {
		_, err := Recover(ctx, o)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "/etc/nginx/nginx.conf: conflict: its original is kept at /"+bk(v1.uuid, "etc/nginx/nginx.conf")+", and the path is a regular file") {
			t.Fatalf("recover %+v: got %v, want %v", o, err, ErrConflict)
		}
	}
	check(t, root, before, "after a refused recover")
}
