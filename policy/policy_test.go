package policy

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
)

// opens counts how often its content is opened.
type opens struct {
	s string
	n int
}

func (o *opens) Open() (io.ReadCloser, error) {
	o.n++
	return io.NopCloser(strings.NewReader(o.s)), nil
}

// With Scans, content with a digest already scanned is not read again,
// and each call still reports the finding at its own entry.
func TestScansShareContent(t *testing.T) {
	secret := &opens{s: "x\npassword = hunter2\n"}
	plain := &opens{s: "nothing here\n"}
	entries := func(dir string) []*tree.Entry {
		es := []*tree.Entry{
			(&tree.Entry{Type: tree.File, Mode: 0o644, Digest: tree.Digest{1}, Content: secret}).WithPath(dir + "/a.ini"),
			(&tree.Entry{Type: tree.File, Mode: 0o644, Digest: tree.Digest{1}, Content: secret}).WithPath(dir + "/b.ini"),
			(&tree.Entry{Type: tree.File, Mode: 0o644, Digest: tree.Digest{2}, Content: plain}).WithPath(dir + "/c.txt"),
		}
		for _, e := range es {
			e.SetOverlay(dir)
		}
		return es
	}
	source := func(e *tree.Entry) (string, bool) { return "src/" + e.Path(), false }
	var scans Scans
	f := &roles.Fleet{}
	for _, dir := range []string{"one", "two"} {
		fs, err := Apply(context.Background(), f, roles.ContentPolicy{}, entries(dir), source, &scans)
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) != 2 || fs[0].Path != dir+"/a.ini" || fs[1].Path != dir+"/b.ini" || fs[0].Line != 2 || fs[1].Source != "src/"+dir+"/b.ini" {
			t.Fatalf("%s: got findings %+v, want line 2 of %[1]s/a.ini and %[1]s/b.ini", dir, fs)
		}
	}
	if secret.n != 1 || plain.n != 1 {
		t.Errorf("opened the shared contents %d and %d times, want once each", secret.n, plain.n)
	}
	// Without Scans every entry is read.
	secret.n = 0
	if _, err := Apply(context.Background(), f, roles.ContentPolicy{}, entries("three"), source, nil); err != nil {
		t.Fatal(err)
	}
	if secret.n != 2 {
		t.Errorf("without Scans opened the content %d times, want 2", secret.n)
	}
}
