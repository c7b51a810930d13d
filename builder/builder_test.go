package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/internetarchive/olimage/ext4"
	"github.com/internetarchive/olimage/image"
	_ "github.com/internetarchive/olimage/internal/golden" // registers -update
	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/overlays"
	"github.com/internetarchive/olimage/policy"
	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/verity"
)

const exampleFleet = "../examples/openlibrary"

// buildMerged builds role of the example fleet and merges its overlays
// once more: the image and the tree it should hold.
func buildMerged(t *testing.T, role string) (*Result, *overlays.Result) {
	t.Helper()
	f, r := loadRole(t, exampleFleet, role)
	res, err := Build(context.Background(), f, r, Options{Output: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	merged, err := overlays.Merge(context.Background(), f, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { merged.Close() })
	return res, merged
}

func loadRole(t *testing.T, dir, role string) (*roles.Fleet, *roles.Role) {
	t.Helper()
	f, err := roles.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Role(role)
	if err != nil {
		t.Fatal(err)
	}
	return f, r
}

type sidecar struct {
	Schema   string             `json:"schema"`
	Image    manifest.ImageFile `json:"image"`
	Manifest json.RawMessage    `json:"manifest"`
}

// checkVerity checks the image's data against its dm-verity root hash
// and, when the tree was written, the tree with veritysetup verify.
func checkVerity(t *testing.T, res *Result, withTree bool) {
	t.Helper()
	p := *res.Verity
	fi, err := os.Stat(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Size(); got != res.Size || withTree != (p.HashOffset != 0) || withTree && p.HashOffset != p.DataBlocks*verity.BlockSize {
		t.Fatalf("image of %d bytes (result says %d), dm-verity %+v, tree written: %v", got, res.Size, p, withTree)
	}
	f, err := os.Open(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := verity.Check(context.Background(), f, fi.Size(), p); err != nil {
		t.Errorf("verity.Check: %v", err)
	}
	if !withTree {
		return
	}
	out, err := exec.Command(testenv.Tool(t, "veritysetup"), "verify", res.Image, res.Image, p.RootHash, fmt.Sprintf("--hash-offset=%d", p.HashOffset)).CombinedOutput()
	if err != nil {
		t.Errorf("veritysetup verify: %v\n%s", err, out)
	}
}

func TestBuildExampleRoles(t *testing.T) {
	for _, role := range []string{"ol-web", "ol-covers", "ol-db"} {
		t.Run(role, func(t *testing.T) {
			f, r := loadRole(t, exampleFleet, role)
			out := t.TempDir()
			withTree := role == "ol-web"
			res, err := Build(context.Background(), f, r, Options{Output: out, Version: "test", SHA256: true, Verity: withTree})
			if err != nil {
				t.Fatal(err)
			}
			testenv.Fsck(t, res.Image)
			checkVerity(t, res, withTree)
			if got := testfs.FileSHA256(t, res.Image); got != res.SHA256 {
				t.Errorf("sha256 of the file %s, result says %s", got, res.SHA256)
			}
			if res.FileSize >= res.Size/2 {
				t.Errorf("image takes %d bytes on disk of %d: not sparse", res.FileSize, res.Size)
			}
			sc := testfs.ReadJSON[sidecar](t, res.Manifest)
			if sc.Schema != manifest.SidecarSchema || sc.Image.SHA256 != res.SHA256 || sc.Image.Size != res.Size || *sc.Image.Verity != *res.Verity {
				t.Errorf("sidecar %+v does not describe %+v", sc.Image, res)
			}
			// The manifest inside the image is the sidecar's, byte for byte.
			inside, err := exec.Command(testenv.Tool(t, "debugfs"), "-R", "cat /"+manifest.Path, res.Image).Output()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bytes.TrimSpace(inside), bytes.TrimSpace(sc.Manifest)) {
				t.Errorf("manifest in the image differs from the sidecar's")
			}
			var m manifest.Manifest
			if err := json.Unmarshal(inside, &m); err != nil {
				t.Fatal(err)
			}
			if m.Role != role || m.UUID != res.UUID || len(m.Entries) != res.Entries-2 || m.Olimage != "test" {
				t.Errorf("manifest role %s uuid %s entries %d; want %s %s %d", m.Role, m.UUID, len(m.Entries), role, res.UUID, res.Entries-2)
			}
			want := FileName(f, role, res.TreeDigest, image.Raw)
			if filepath.Base(res.Image) != want {
				t.Errorf("image named %s, want %s", filepath.Base(res.Image), want)
			}
			dumpe2fs := testenv.Run(t, "dumpe2fs", "-h", res.Image)
			for _, want := range []string{"Filesystem UUID:          " + res.UUID, "Filesystem volume name:   " + r.Image.Label} {
				if !strings.Contains(dumpe2fs, want) {
					t.Errorf("dumpe2fs -h lacks %q", want)
				}
			}
		})
	}
}

func TestBuildZstdAndStdout(t *testing.T) {
	f, r := loadRole(t, exampleFleet, "ol-mem")
	dir := t.TempDir()
	raw, err := Build(context.Background(), f, r, Options{Output: dir, SHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	zs, err := Build(context.Background(), f, r, Options{Output: filepath.Join(dir, "x.img.zst"), SHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	if zs.Verity.RootHash != raw.Verity.RootHash {
		t.Errorf("zstd build: root hash %s; raw build %s", zs.Verity.RootHash, raw.Verity.RootHash)
	}
	if !zs.Compressed || zs.SHA256 != raw.SHA256 {
		t.Fatalf("zstd build: compressed %v, sha256 %s; raw build sha256 %s", zs.Compressed, zs.SHA256, raw.SHA256)
	}
	zf, _ := os.Open(zs.Image)
	defer zf.Close()
	zr, err := zstd.NewReader(zf)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if got := testfs.SHA256(t, zr); got != raw.SHA256 {
		t.Errorf("decompressed sha256 %s, want %s", got, raw.SHA256)
	}
	var stdout bytes.Buffer
	st, err := Build(context.Background(), f, r, Options{Output: "-", Stdout: &stdout, SHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(stdout.Bytes())
	if hex.EncodeToString(sum[:]) != raw.SHA256 || st.SHA256 != raw.SHA256 {
		t.Errorf("stdout image sha256 %x (result %s), want %s", sum, st.SHA256, raw.SHA256)
	}
}

func TestBuildFailuresLeaveNothing(t *testing.T) {
	f, r := loadRole(t, exampleFleet, "ol-web")

	t.Run("too small", func(t *testing.T) {
		out := t.TempDir()
		small := *r
		small.Image.Size = 4 << 20
		_, err := Build(context.Background(), f, &small, Options{Output: out})
		if !errors.Is(err, ext4.ErrNoSpace) {
			t.Fatalf("got %v, want ErrNoSpace", err)
		}
		if !strings.Contains(err.Error(), "needs an image of at least") || !strings.Contains(err.Error(), "ol-web.yaml") {
			t.Errorf("error %q does not say what is needed and where to set it", err)
		}
		if n := testfs.Names(t, out); len(n) != 0 {
			t.Errorf("output directory holds %v after a failed build", n)
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		out := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Build(ctx, f, r, Options{Output: out})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
		if n := testfs.Names(t, out); len(n) != 0 {
			t.Errorf("output directory holds %v after an interrupted build", n)
		}
	})

	t.Run("output is not a directory or image name", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "notes.txt")
		_, err := Build(context.Background(), f, r, Options{Output: p})
		if !errors.Is(err, ErrOutput) || !strings.Contains(err.Error(), p) {
			t.Fatalf("got %v, want ErrOutput naming %s", err, p)
		}
	})

	t.Run("unwritable directory", func(t *testing.T) {
		// root writes anywhere, so make the directory a path below a file.
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, nil, 0o644)
		_, err := Build(context.Background(), f, r, Options{Output: filepath.Join(file, "x.img")})
		if !errors.Is(err, ErrOutput) {
			t.Fatalf("got %v, want ErrOutput", err)
		}
	})

	for _, tc := range []struct {
		name   string
		change func(victim string) error
		want   error
	}{
		{"rewritten", func(v string) error { return os.WriteFile(v, bytes.Repeat([]byte("b"), 100000), 0o644) }, ext4.ErrContentChanged},
		{"grown", func(v string) error { return os.WriteFile(v, bytes.Repeat([]byte("a"), 100001), 0o644) }, ext4.ErrContentChanged},
		{"shrunk", func(v string) error { return os.Truncate(v, 99999) }, ext4.ErrContentChanged},
		{"removed", os.Remove, fs.ErrNotExist},
	} {
		t.Run("source "+tc.name+" after merge", func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(dir, "src", "opt", "data")
			testfs.WriteFiles(t, dir, map[string]string{
				"olimage.yaml": "fleet: t\n",
				"roles/r.yaml": "overlays: [{name: s, dir: src}]\n",
				"src/opt/data": strings.Repeat("a", 100000),
			})
			f, r := loadRole(t, dir, "r")
			out := t.TempDir()
			// Change the file after it was read into the tree and planned.
			_, err := Build(context.Background(), f, r, Options{Output: out, afterPlan: func() {
				if err := tc.change(victim); err != nil {
					t.Fatal(err)
				}
			}})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), victim) {
				t.Fatalf("got %v, want %v naming %s", err, tc.want, victim)
			}
			if n := testfs.Names(t, out); len(n) != 0 {
				t.Errorf("output directory holds %v after a failed build", n)
			}
		})
	}
}

// TestRoleVerity: a role's image: {verity: true} appends the tree as
// --verity does, and -o - streams the same bytes as the file.
func TestRoleVerity(t *testing.T) {
	dir := testfs.NewDir(t, map[string]string{
		"olimage.yaml":     "fleet: t\nepoch: 2024-01-01T00:00:00Z\n",
		"roles/r.yaml":     "image: {verity: true}\noverlays: [{name: s, dir: src}]\n",
		"src/opt/app/data": "release a\n",
	})
	f, r := loadRole(t, dir, "r")
	res, err := Build(context.Background(), f, r, Options{Output: t.TempDir(), SHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	checkVerity(t, res, true)
	var stdout bytes.Buffer
	st, err := Build(context.Background(), f, r, Options{Output: "-", Stdout: &stdout, SHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(stdout.Bytes())
	if got := hex.EncodeToString(sum[:]); got != res.SHA256 || st.SHA256 != res.SHA256 || *st.Verity != *res.Verity {
		t.Errorf("stdout: sha256 %s (result %s, %+v), file %s (%+v)", got, st.SHA256, st.Verity, res.SHA256, res.Verity)
	}
}

// The content policy runs beside the tree digest, the manifest and the
// layout: its findings are still what Check reports, rather than a layout
// that does not fit, and a role it passes is planned.
func TestCheckPolicyFirst(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("z", 2<<20) // more than an image of 1 MiB holds
	for _, c := range []struct {
		role, source string
		policy, fits bool // the policy finds a secret; the tree fits the image
	}{
		{"secret-too-big", "a.ini: x\npassword = hunter2\n|big: " + big, true, false},
		{"too-big", "big: " + big, false, false},
		{"clean", "a.ini: x\n", false, true},
	} {
		size := "1MiB"
		if c.fits {
			size = "auto"
		}
		files := map[string]string{
			"olimage.yaml":              "fleet: t\nepoch: 2024-01-01T00:00:00Z\n",
			"roles/" + c.role + ".yaml": "image: {size: " + size + "}\noverlays: [{name: conf, dir: " + c.role + "}]\n",
		}
		for _, f := range strings.Split(c.source, "|") {
			name, body, _ := strings.Cut(f, ": ")
			files[c.role+"/etc/app/"+name] = body
		}
		testfs.WriteFiles(t, dir, files)
		f, r := loadRole(t, dir, c.role)
		_, err := Check(context.Background(), f, r)
		switch {
		case c.policy && (!errors.Is(err, policy.ErrPolicy) || !strings.Contains(err.Error(), c.role+"/etc/app/a.ini:2: secret")):
			t.Errorf("%s: Check: %v; want the policy's finding", c.role, err)
		case !c.policy && c.fits && err != nil:
			t.Errorf("%s: Check: %v; want none", c.role, err)
		case !c.policy && !c.fits && (err == nil || errors.Is(err, policy.ErrPolicy)):
			t.Errorf("%s: Check: %v; want an error of the layout", c.role, err)
		}
	}
}

// Check measures the manifest rather than writing it: it needs no room
// in $TMPDIR, and the image it lays out is the size Build writes.
// A manifest as large as the sparse scan's threshold is not read by
// planning: a measured one has nothing to read, and validate of a large
// role failed with "measured, not written".
func TestCheckLargeManifest(t *testing.T) {
	files := map[string]string{
		"olimage.yaml": "fleet: t\nepoch: 2024-01-01T00:00:00Z\n",
		"roles/r.yaml": "overlays: [{name: s, dir: src}]\n",
	}
	for i := range 400 { // about 400 bytes of manifest each
		files[fmt.Sprintf("src/opt/f%03d", i)] = "x"
	}
	dir := testfs.NewDir(t, files)
	f, r := loadRole(t, dir, "r")
	c, err := Check(context.Background(), f, r)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	built, err := Build(context.Background(), f, r, Options{Output: t.TempDir()})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	// The sidecar holds the image's manifest and a few lines more.
	side, err := os.Stat(built.Image + ".manifest.json")
	if err != nil || side.Size() < 64<<10 || c.Size != built.Size {
		t.Errorf("sidecar %v (%v), check size %d, built %d: want a manifest of at least 64 KiB and the sizes equal", side, err, c.Size, built.Size)
	}
	testenv.Fsck(t, built.Image)
}

func TestCheckMeasuresManifest(t *testing.T) {
	dir := testfs.NewDir(t, map[string]string{
		"olimage.yaml":   "fleet: t\nepoch: 2024-01-01T00:00:00Z\n",
		"roles/r.yaml":   "overlays: [{name: s, dir: src}]\n",
		"src/opt/a/data": strings.Repeat("data\n", 1000),
		"src/etc/a.conf": "x = 1\n",
	})
	f, r := loadRole(t, dir, "r")
	built, err := Build(context.Background(), f, r, Options{Output: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", filepath.Join(dir, "missing"))
	c, err := Check(context.Background(), f, r)
	if err != nil || c.Size != built.Size || c.Entries != built.Entries-2 {
		t.Errorf("Check with $TMPDIR missing: %+v, %v; want size %d and %d entries, as built (without the manifest's two)", c, err, built.Size, built.Entries-2)
	}
}
