package operand_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/builder"
	"github.com/internetarchive/olimage/diff"
	"github.com/internetarchive/olimage/internal/testimage"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/operand"
	"github.com/internetarchive/olimage/tree"
)

var files = map[string]string{
	"opt/app/main.py":    "print('hello')\n",
	"opt/app/data.txt":   strings.Repeat("data\n", 3000),
	"etc/app/app.conf":   "port = 8080\n",
	"opt/app/empty.txt":  "",
	"etc/app/nested/x.y": "x\n",
}

func open(t *testing.T, name string, opts operand.Options) *operand.Operand {
	t.Helper()
	s, err := operand.Open(context.Background(), name, opts)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func loadTree(t *testing.T, s *operand.Operand) *tree.Tree {
	t.Helper()
	tr, err := s.LoadTree()
	if err != nil || tr == nil {
		t.Fatalf("%s: tree %v, %v", s.Name(), tr, err)
	}
	return tr
}

// sameTree fails unless a and b hold the same entries with the same
// content, as olimage diff compares them.
func sameTree(t *testing.T, what string, a, b *tree.Tree) {
	t.Helper()
	changes, err := diff.Trees(context.Background(), a, b, diff.Options{Exact: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		t.Errorf("%s: %s: %v", what, c.Path, c.Kinds)
	}
}

// An image, its sidecar, the manifest inside the image and the role it
// was built from are four sources of one tree; each is opened as its kind.
func TestOpenKinds(t *testing.T) {
	dir := testimage.Fleet(t, files)
	res := testimage.Build(t, dir, builder.Options{})

	img := open(t, res.Image, operand.Options{})
	if img.Kind() != operand.Image || img.FS() == nil || img.Tree() == nil {
		t.Fatalf("image: kind %q, fs %v, tree %v", img.Kind(), img.FS() != nil, img.Tree() != nil)
	}
	for _, e := range img.Tree().Entries {
		if e.Path() == "lost+found" || strings.HasPrefix(e.Path(), tree.OlimageDir) {
			t.Errorf("image tree holds %s, which no overlay supplied", e.Path())
		}
	}
	if e := img.Tree().Get("opt/app/data.txt"); e == nil || e.Digest.IsZero() {
		t.Fatalf("image tree: data.txt %v, want it with its digest", e)
	}

	side := open(t, res.Manifest, operand.Options{})
	if side.Kind() != operand.Manifest || side.Manifest() == nil || side.Manifest().Role != testimage.Role {
		t.Fatalf("sidecar: kind %q, manifest %+v", side.Kind(), side.Manifest())
	}
	sameTree(t, "sidecar against image", loadTree(t, side), img.Tree())

	role := open(t, testimage.Role, operand.Options{Fleet: dir})
	if role.Kind() != operand.Role {
		t.Fatalf("role: kind %q", role.Kind())
	}
	sameTree(t, "role against image", role.Tree(), img.Tree())

	m, embedded, err := img.EmbeddedManifest()
	if err != nil || m.Role != testimage.Role || m.TreeDigest != res.TreeDigest {
		t.Fatalf("embedded manifest: %+v, %v; want role %s, tree %s", m, err, testimage.Role, res.TreeDigest)
	}
	sameTree(t, "embedded manifest against image", embedded, img.Tree())
	head, err := img.EmbeddedHead()
	if err != nil || head.TreeDigest != res.TreeDigest {
		t.Errorf("embedded head: %+v, %v; want tree %s", head, err, res.TreeDigest)
	}
}

// With Manifests, an image's tree comes from the manifest it carries,
// decoded only when asked for; the result is the tree read from its files.
func TestOpenFromManifest(t *testing.T) {
	res := testimage.Build(t, testimage.Fleet(t, files), builder.Options{})
	fast := open(t, res.Image, operand.Options{Manifests: true})
	if fast.Manifest() == nil || fast.Manifest().TreeDigest != res.TreeDigest {
		t.Fatalf("manifest head %+v, want tree %s", fast.Manifest(), res.TreeDigest)
	}
	read, err := operand.OpenImage(context.Background(), res.Image, operand.Digests)
	if err != nil {
		t.Fatal(err)
	}
	defer read.Close()
	sameTree(t, "manifest against files", loadTree(t, fast), read.Tree())

	// Listing reads metadata only: no digests.
	list, err := operand.OpenImage(context.Background(), res.Image, operand.Listing)
	if err != nil {
		t.Fatal(err)
	}
	defer list.Close()
	if e := list.Tree().Get("opt/app/main.py"); e == nil || !e.Digest.IsZero() || e.Size != int64(len(files["opt/app/main.py"])) {
		t.Errorf("listing: main.py %+v, want its size and no digest", e)
	}
	hashed, err := list.HashedTree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, "hashed listing against files", hashed, read.Tree())
}

// An image without the manifest olimage writes (one made by mkfs.ext4,
// say) is read from its files when Manifests asks for the manifest.
func TestOpenFromManifestFallsBack(t *testing.T) {
	res := testimage.Build(t, testimage.Fleet(t, files), builder.Options{})
	want, err := operand.OpenImage(context.Background(), res.Image, operand.Digests)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	// Overwrite the manifest's bytes in place: still a file, no longer JSON.
	off, n, ok, err := want.FS().Contiguous(manifest.Path)
	if err != nil || !ok {
		t.Fatalf("manifest not in one run of blocks: %v", err)
	}
	corrupt(t, res.Image, off, n)
	s := open(t, res.Image, operand.Options{Manifests: true})
	if s.Body() != nil || s.Tree() == nil {
		t.Fatalf("a manifest that is not JSON was used (body %d bytes)", len(s.Body()))
	}
	sameTree(t, "fallback against files", s.Tree(), want.Tree())
}

func corrupt(t *testing.T, img string, off, n int64) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(strings.Repeat("!", int(n))), off); err != nil {
		t.Fatal(err)
	}
}

// What is no source gives an error that says which and why.
func TestOpenErrors(t *testing.T) {
	dir := testimage.Fleet(t, files)
	tmp := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, arg string
		opts      operand.Options
		is        error
		want      string
	}{
		{"no such role", "ol-nothing", operand.Options{Fleet: dir}, operand.ErrUnknown, "has no such role"},
		{"no fleet", "ol-nothing", operand.Options{Fleet: filepath.Join(tmp, "none")}, operand.ErrUnknown, "fleet does not load"},
		{"missing file", filepath.Join(tmp, "gone.img"), operand.Options{Fleet: dir}, fs.ErrNotExist, "gone.img"},
		{"missing file without a slash", "gone.img", operand.Options{Fleet: dir}, fs.ErrNotExist, "gone.img"},
		{"other schema", write("other.json", `{"schema": "olimage.nothing/v9", "entries": []}`), operand.Options{}, nil, `schema "olimage.nothing/v9"`},
		{"broken json", write("broken.json", `{"schema": `), operand.Options{}, nil, "broken.json: not a manifest"},
		{"not ext4", write("zeros.img", strings.Repeat("\x00", 8192)), operand.Options{}, nil, "zeros.img"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := operand.Open(context.Background(), tc.arg, tc.opts)
			if err == nil {
				s.Close()
				t.Fatalf("opened %s as %s", tc.arg, s.Kind())
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestLooksLikeFile(t *testing.T) {
	for name, want := range map[string]bool{
		"ol-web": false, "ol-web.img": true, "out/ol-web": true, "a.img.zst": true,
		"m.json": true, "disk.raw": true, "x.gz": true, "ol.web": false,
	} {
		if got := operand.LooksLikeFile(name); got != want {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
}

func TestIsImage(t *testing.T) {
	res := testimage.Build(t, testimage.Fleet(t, files), builder.Options{})
	for name, want := range map[string]bool{
		res.Image:                true,
		res.Manifest:             false, // JSON
		filepath.Dir(res.Image):  false, // a directory
		res.Image + ".not-there": false,
		"-":                      true, // stdin
	} {
		if got := operand.IsImage(name); got != want {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
}
