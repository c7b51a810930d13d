package operand_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/builder"
	"github.com/internetarchive/olimage/diff"
	"github.com/internetarchive/olimage/internal/testimage"
	"github.com/internetarchive/olimage/operand"
)

// TestCompare compares two real images, and an image with a role, in
// each way diff.Compare chooses from, opened by DiffOpener, and checks
// that every way finds the same changes while reading what it should:
// manifests, listings or digests.
func TestCompare(t *testing.T) {
	files := map[string]string{"opt/app/a.txt": "one\ntwo\n", "opt/app/same": "x", "etc/app.conf": "k=1\n"}
	imgA := testimage.Build(t, testimage.Fleet(t, files), builder.Options{}).Image
	files["opt/app/a.txt"] = "one\nthree\n"
	files["opt/app/new"] = "n\n"
	fleetB := testimage.Fleet(t, files)
	imgB := testimage.Build(t, fleetB, builder.Options{}).Image
	want := []string{"opt/app/a.txt [content]", "opt/app/new [added]"}

	// digestOf is the digest a side's tree holds for a.txt: "" when the
	// image was listed, not hashed.
	digestOf := func(s diff.Side) string {
		e := s.Tree().Get("opt/app/a.txt")
		if e == nil {
			return "no entry"
		}
		return e.Digest.String()
	}
	for _, tc := range []struct {
		name      string
		b         string
		opts      diff.CompareOptions
		operands  operand.Options
		manifests bool // both sides compared by their manifests
		hashed    bool // A's files hashed (else listed, or from a manifest)
		text      string
	}{
		{name: "manifests", b: imgB, manifests: true, text: "1 added, 0 removed, 1 modified"},
		{name: "no manifests", b: imgB, opts: diff.CompareOptions{NoManifests: true}},
		{name: "no manifests, tree digests", b: imgB, opts: diff.CompareOptions{NoManifests: true, TreeDigests: true}, hashed: true},
		{name: "content", b: imgB, opts: diff.CompareOptions{Content: true}, text: "-two\n+three\n"},
		// A role carries no manifest: the image side is read and hashed.
		{name: "role", b: testimage.Role, operands: operand.Options{Fleet: fleetB}, hashed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := diff.Compare(context.Background(), imgA, tc.b, operand.DiffOpener(tc.operands), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Close()
			var got []string
			for _, c := range res.Changes {
				got = append(got, fmt.Sprintf("%s %v", c.Path, c.Kinds))
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("changes (-want +got):\n%s", d)
			}
			if byManifest := res.A.Manifest() != nil && res.B.Manifest() != nil; byManifest != tc.manifests {
				t.Errorf("compared by manifests: got %v, want %v", byManifest, tc.manifests)
			}
			if !tc.manifests {
				if d := digestOf(res.A); (d != "") != tc.hashed {
					t.Errorf("a.txt's digest in A: got %q, want hashed %v", d, tc.hashed)
				}
			}
			var buf bytes.Buffer
			if err := res.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), tc.text) {
				t.Errorf("text output lacks %q:\n%s", tc.text, buf.String())
			}
			if s := diff.Summarize(res.Changes); s != (diff.Summary{Added: 1, Modified: 1}) {
				t.Errorf("summary: got %+v, want 1 added and 1 modified", s)
			}
			if act := res.Activation(); len(act) != 0 {
				t.Errorf("activation changes: got %v, want none", act)
			}
			cd, err := res.Changes[0].ContentDiff()
			if err != nil {
				t.Fatal(err)
			}
			if tc.manifests && (cd == nil || !strings.Contains(cd.Note, "not available from a manifest")) ||
				!tc.manifests && (cd == nil || !strings.Contains(cd.Text, "-two\n+three\n")) {
				t.Errorf("content diff of a.txt: got %+v", cd)
			}
		})
	}
}
