package diff

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	_ "github.com/internetarchive/olimage/internal/golden" // registers -update
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

func mk(entries ...*tree.Entry) *tree.Tree {
	t, err := tree.New(entries)
	if err != nil {
		panic(err)
	}
	return t
}

func file(p, digest string, mode uint32) *tree.Entry {
	return (&tree.Entry{Type: tree.File, Mode: mode, Size: int64(len(digest)), Digest: sha256.Sum256([]byte(digest))}).WithPath(p)
}

func TestTrees(t *testing.T) {
	a := mk(
		(&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath("etc"),
		file("etc/a", "aaaa", 0o644),
		file("etc/gone", "g", 0o644),
		(&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath("opt"),
		(&tree.Entry{Type: tree.Symlink, Mode: 0o777, Target: "v1"}).WithPath("opt/link"),
		file("opt/mode", "m", 0o644),
		file("opt/owner", "o", 0o644),
		file("opt/type", "t", 0o644),
		(&tree.Entry{Type: tree.File, Mode: 0o644, Size: 1, Digest: sha256.Sum256([]byte("x"))}).WithPath("opt/x").WithXattrs(tree.Xattr{Name: "user.a", Value: []byte("1")}),
	)
	owner := file("opt/owner", "o", 0o644)
	owner.UID = 999
	b := mk(
		(&tree.Entry{Type: tree.Dir, Mode: 0o755, ModTime: 5}).WithPath("etc"),
		file("etc/a", "bbbb", 0o644),
		file("etc/new", "n", 0o644),
		(&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath("opt"),
		(&tree.Entry{Type: tree.Symlink, Mode: 0o777, Target: "v2"}).WithPath("opt/link"),
		file("opt/mode", "m", 0o755),
		owner,
		(&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath("opt/type"),
		(&tree.Entry{Type: tree.File, Mode: 0o644, Size: 1, Digest: sha256.Sum256([]byte("x"))}).WithPath("opt/x").WithXattrs(tree.Xattr{Name: "user.a", Value: []byte("2")}),
	)
	changes, err := Trees(context.Background(), a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	WriteText(&buf, changes)
	want := `etc/
  M    etc/a  (4 -> 4 bytes)
  -    etc/gone  (1 bytes)
  +    etc/new  (1 bytes)

opt/
  L    opt/link  (-> v2 (was v1))
  m    opt/mode  (mode 0644 -> 0755)
  o    opt/owner  (owner 0:0 -> 999:0)
  Tm   opt/type  (file -> dir, mode 0644 -> 0755)
  x    opt/x  (xattrs user.a -> user.a)
`
	if d := cmp.Diff(want, buf.String()); d != "" {
		t.Errorf("text (-want +got):\n%s", d)
	}
	if s := Summarize(changes); s != (Summary{Added: 1, Removed: 1, Modified: 6}) {
		t.Errorf("summary %+v", s)
	}

	timed, _ := Trees(context.Background(), a, b, Options{Times: true})
	if len(timed) != len(changes)+1 || timed[0].Path != "etc" || !timed[0].Has(Time) {
		t.Errorf("with Times: %d changes, first %v", len(timed), timed[0])
	}
	only, _ := Trees(context.Background(), a, b, Options{Paths: []string{"/etc", "opt/l*"}})
	var paths []string
	for _, c := range only {
		paths = append(paths, c.Path)
	}
	if d := cmp.Diff([]string{"etc/a", "etc/gone", "etc/new", "opt/link"}, paths); d != "" {
		t.Errorf("filtered (-want +got):\n%s", d)
	}
	same, _ := Trees(context.Background(), a, a, Options{})
	if len(same) != 0 {
		t.Errorf("a tree differs from itself: %v", same)
	}
}

// TestTextGroups checks that a top-level directory is listed in the group
// of what is below it, and a top-level file in a group of its own.
func TestTextGroups(t *testing.T) {
	a := mk(file("README", "r", 0o644))
	b := mk(
		(&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath("srv"),
		file("srv/x", "x", 0o644),
	)
	changes, err := Trees(context.Background(), a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteText(&buf, changes); err != nil {
		t.Fatal(err)
	}
	want := `README
  -    README  (1 bytes)

srv/
  +    srv/
  +    srv/x  (1 bytes)
`
	if d := cmp.Diff(want, buf.String()); d != "" {
		t.Errorf("text (-want +got):\n%s", d)
	}
}

// TestUnifiedMatchesDiff checks our unified diff against GNU diff -u.
func TestUnifiedMatchesDiff(t *testing.T) {
	gnu, err := exec.LookPath("diff")
	if err != nil {
		t.Skip("diff not installed")
	}
	cases := []struct{ a, b string }{
		{"a\nb\nc\n", "a\nB\nc\n"},
		{"", "new\n"},
		{"old\n", ""},
		{"1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n", "1\n2\nx\n4\n5\n6\n7\n8\n9\n10\n11\n12\ny\n14\n15\n16\n"},
		{"listen 80;\nserver_name a;\n", "listen 8080;\nserver_name a;\nroot /srv;\n"},
		{"no newline", "no newline at all"},
		{strings.Repeat("same\n", 50) + "tail\n", "head\n" + strings.Repeat("same\n", 50)},
	}
	dir := t.TempDir()
	for i, tc := range cases {
		pa, pb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		os.WriteFile(pa, []byte(tc.a), 0o644)
		os.WriteFile(pb, []byte(tc.b), 0o644)
		out, _ := exec.Command(gnu, "-u", "--label", "a", "--label", "b", pa, pb).Output()
		var got bytes.Buffer
		if err := Unified(&got, "a", "b", []byte(tc.a), []byte(tc.b)); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(string(out), got.String()); d != "" {
			t.Errorf("case %d (-diff -u +ours):\n%s", i, d)
		}
	}
}

func FuzzUnified(f *testing.F) {
	f.Add("a\nb\n", "b\nc\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		var out bytes.Buffer
		Unified(&out, "a", "b", []byte(a), []byte(b))
		if a == b && out.Len() != 0 {
			t.Fatalf("equal inputs gave a diff")
		}
	})
}

func TestDeployRename(t *testing.T) {
	dir := func(p string) *tree.Entry { return (&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath(p) }
	link := func(target string) *tree.Entry {
		return (&tree.Entry{Type: tree.Symlink, Mode: 0o777, Target: target}).WithPath("opt/openlibrary/olsystem")
	}
	base := []*tree.Entry{dir("opt"), dir("opt/openlibrary"), dir("opt/openlibrary/deploys"), dir("opt/openlibrary/deploys/olsystem")}
	a := mk(append(base[:4:4],
		dir("opt/openlibrary/deploys/olsystem/aaa"),
		file("opt/openlibrary/deploys/olsystem/aaa/same", "s", 0o644),
		file("opt/openlibrary/deploys/olsystem/aaa/nginx.conf", "old", 0o644),
		link("deploys/olsystem/aaa"))...)
	b := mk(append(base[:4:4],
		dir("opt/openlibrary/deploys/olsystem/bbb"),
		file("opt/openlibrary/deploys/olsystem/bbb/same", "s", 0o644),
		file("opt/openlibrary/deploys/olsystem/bbb/nginx.conf", "new", 0o644),
		file("opt/openlibrary/deploys/olsystem/bbb/added", "a", 0o644),
		link("deploys/olsystem/bbb"))...)
	changes, err := Trees(context.Background(), a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	WriteText(&buf, changes)
	want := `opt/
  R    opt/openlibrary/deploys/olsystem/bbb  (was opt/openlibrary/deploys/olsystem/aaa)
  +    opt/openlibrary/deploys/olsystem/bbb/added  (1 bytes)
  M    opt/openlibrary/deploys/olsystem/bbb/nginx.conf  (3 -> 3 bytes)
  L    opt/openlibrary/olsystem  (-> deploys/olsystem/bbb (was deploys/olsystem/aaa))
`
	if d := cmp.Diff(want, buf.String()); d != "" {
		t.Errorf("text (-want +got):\n%s", d)
	}

	// Exact: every path of either bin is its own change, none renamed.
	exact, err := Trees(context.Background(), a, b, Options{Exact: true})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range exact {
		kinds = append(kinds, string(c.Kinds[0])+" "+c.Path)
	}
	wantKinds := []string{
		"removed opt/openlibrary/deploys/olsystem/aaa",
		"removed opt/openlibrary/deploys/olsystem/aaa/nginx.conf",
		"removed opt/openlibrary/deploys/olsystem/aaa/same",
		"added opt/openlibrary/deploys/olsystem/bbb",
		"added opt/openlibrary/deploys/olsystem/bbb/added",
		"added opt/openlibrary/deploys/olsystem/bbb/nginx.conf",
		"added opt/openlibrary/deploys/olsystem/bbb/same",
		"target opt/openlibrary/olsystem",
	}
	if d := cmp.Diff(wantKinds, kinds); d != "" {
		t.Errorf("exact (-want +got):\n%s", d)
	}
}

// TestChunksMatchesTrees compares two trees decoded in full and as
// manifest chunks: the changes must be the same.
func TestChunksMatchesTrees(t *testing.T) {
	dir := func(p string) *tree.Entry { return (&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath(p) }
	a := mk(dir("opt"), dir("opt/openlibrary"), dir("opt/openlibrary/deploys"), dir("opt/openlibrary/deploys/ol"),
		dir("opt/openlibrary/deploys/ol/aaa"), file("opt/openlibrary/deploys/ol/aaa/x", "1", 0o644),
		file("opt/same", "s", 0o644), file("opt/gone", "g", 0o644), file("opt/mode", "m", 0o644))
	b := mk(dir("opt"), dir("opt/openlibrary"), dir("opt/openlibrary/deploys"), dir("opt/openlibrary/deploys/ol"),
		dir("opt/openlibrary/deploys/ol/bbb"), file("opt/openlibrary/deploys/ol/bbb/x", "2", 0o644),
		file("opt/same", "s", 0o644), file("opt/new", "n", 0o644), file("opt/mode", "m", 0o600))
	chunks := func(tr *tree.Tree) []manifest.Chunk {
		var buf bytes.Buffer
		if err := manifest.WritePlan(&buf, manifest.Plan{Schema: manifest.PlanSchema}, tr); err != nil {
			t.Fatal(err)
		}
		c, ok := manifest.Chunks(buf.Bytes())
		if !ok {
			t.Fatal("Chunks refused a plan")
		}
		return c
	}
	want, err := Trees(context.Background(), a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Chunks(context.Background(), chunks(a), chunks(b), Options{})
	if err != nil {
		t.Fatal(err)
	}
	render := func(c []Change) string {
		var buf bytes.Buffer
		WriteText(&buf, c)
		return buf.String()
	}
	if d := cmp.Diff(render(want), render(got)); d != "" || len(want) != 5 {
		t.Errorf("%d changes; chunks vs trees (-trees +chunks):\n%s", len(want), d)
	}
}

type memContent string

func (m memContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(string(m))), nil
}

// Files without digests on both sides (images read without hashing) are
// compared byte by byte.
func TestTreesCompareBytes(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	f := func(p, content string) *tree.Entry {
		return (&tree.Entry{Type: tree.File, Mode: 0o644, Size: int64(len(content)), Content: memContent(content)}).WithPath(p)
	}
	hashed := f("d/hashed", "same")
	sum := sha256.Sum256([]byte("same"))
	hashed.Digest = sum
	a := mk((&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath("d"),
		f("d/big-same", big), f("d/big-last-byte", big+"a"), f("d/empty", ""), f("d/first-byte", "abcd"),
		f("d/hashed", "same"), f("d/same", "abcd"), f("d/size", "abc"))
	b := mk((&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath("d"),
		f("d/big-same", big), f("d/big-last-byte", big+"b"), f("d/empty", ""), f("d/first-byte", "xbcd"),
		hashed, f("d/same", "abcd"), f("d/size", "abcd"))
	changes, err := Trees(context.Background(), a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.Path+" "+string(c.Kinds[0]))
	}
	// d/hashed has a digest on one side only: its content is hashed on the
	// other and compared as before.
	want := []string{"d/big-last-byte content", "d/first-byte content", "d/size content"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("changes (-want +got):\n%s", d)
	}
	if d := a.Get("d/same").Digest; !d.IsZero() {
		t.Errorf("comparing bytes left a digest behind: %s", d)
	}
}

type brokenContent struct{}

func (brokenContent) Open() (io.ReadCloser, error) { return nil, errors.New("unreadable") }

// Paths that --path leaves out are not read: an unreadable file there
// does not fail the comparison.
func TestTreesCompareBytesOnlyKeptPaths(t *testing.T) {
	f := func(p string, c tree.Content) *tree.Entry {
		return (&tree.Entry{Type: tree.File, Mode: 0o644, Size: 4, Content: c}).WithPath(p)
	}
	a := mk(f("broken", brokenContent{}), f("kept", memContent("abcd")))
	b := mk(f("broken", brokenContent{}), f("kept", memContent("abce")))
	if _, err := Trees(context.Background(), a, b, Options{}); err == nil || !strings.Contains(err.Error(), "broken: unreadable") {
		t.Fatalf("without a filter: got %v, want the unreadable file named", err)
	}
	changes, err := Trees(context.Background(), a, b, Options{Paths: []string{"kept"}})
	if err != nil || len(changes) != 1 || changes[0].Path != "kept" || !changes[0].Has(Content) {
		t.Fatalf("with --path kept: %v, %v", changes, err)
	}
}

// Past maxEdits changed lines a note stands in for the line diff.
func TestUnifiedTooManyEdits(t *testing.T) {
	var a, b strings.Builder
	for i := range maxEdits {
		fmt.Fprintf(&a, "a %d\n", i)
		fmt.Fprintf(&b, "b %d\n", i)
	}
	for _, tc := range []struct {
		a, b string
		note bool
	}{
		{a.String(), b.String(), true},                                          // 2*maxEdits lines change
		{a.String()[:len(a.String())/4], b.String()[:len(b.String())/4], false}, // maxEdits/2 change
	} {
		var out bytes.Buffer
		if err := Unified(&out, "a", "b", []byte(tc.a), []byte(tc.b)); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(out.String(), "lines differ; no line diff"); got != tc.note {
			t.Errorf("%d lines against %d: note %v, want %v", strings.Count(tc.a, "\n"), strings.Count(tc.b, "\n"), got, tc.note)
		}
	}
}
