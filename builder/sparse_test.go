package builder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/roles"
)

// writeFleet makes a fleet of one role, "r", whose one overlay is the
// directory src, outside the fleet, which the fleet allows.
func writeFleet(t testing.TB, src string) string {
	t.Helper()
	dir := t.TempDir()
	testfs.WriteFiles(t, dir, map[string]string{
		"olimage.yaml": "fleet: t\nepoch: 2024-01-01T00:00:00Z\nsources: {allow_outside: [" + src + "]}\n",
		"roles/r.yaml": "overlays:\n  - {name: tree, dir: " + src + "}\n",
	})
	return dir
}

// A file with long zero runs keeps them as holes in the image, and every
// way of writing the image (direct to a file system that allows it,
// through the page cache on tmpfs, to stdout) gives the same bytes.
func TestBuildSparseFileOutputs(t *testing.T) {
	src := t.TempDir()
	data := make([]byte, 3<<20)
	copy(data[1<<20:], bytes.Repeat([]byte("olimage "), (1<<20)/8)) // [1 MiB, 2 MiB) is data
	copy(data[len(data)-100:], bytes.Repeat([]byte("z"), 100))      // and the last 100 bytes
	if err := os.MkdirAll(filepath.Join(src, "opt/data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "opt/data/sparse.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, r := loadRole(t, writeFleet(t, src), "r")

	disk, err := Build(context.Background(), f, r, Options{Output: t.TempDir(), SHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Fsck(t, disk.Image)
	if got := testfs.FileSHA256(t, disk.Image); got != disk.SHA256 {
		t.Errorf("sha256 of the file %s, result says %s", got, disk.SHA256)
	}
	mem, err := Build(context.Background(), f, r, Options{Output: tmpfsDir(t), SHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	// Without O_DIRECT, with the dm-verity tree after the file system.
	memTree, err := Build(context.Background(), f, r, Options{Output: tmpfsDir(t), Verity: true})
	if err != nil {
		t.Fatal(err)
	}
	checkVerity(t, memTree, true)
	if memTree.Verity.RootHash != disk.Verity.RootHash {
		t.Errorf("image on tmpfs with its tree: root hash %s, want %s", memTree.Verity.RootHash, disk.Verity.RootHash)
	}
	if got := testfs.FileSHA256(t, mem.Image); got != disk.SHA256 || mem.SHA256 != disk.SHA256 {
		t.Errorf("image on tmpfs: sha256 %s (result %s), want %s", got, mem.SHA256, disk.SHA256)
	}
	var stdout bytes.Buffer
	st, err := Build(context.Background(), f, r, Options{Output: "-", Stdout: &stdout, SHA256: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.SHA256 != disk.SHA256 || int64(stdout.Len()) != disk.Size {
		t.Errorf("stdout image: sha256 %s, %d bytes; want %s, %d", st.SHA256, stdout.Len(), disk.SHA256, disk.Size)
	}

	// 256 blocks of the middle MiB and the last block hold data; the rest
	// of the 3 MiB are holes.
	out := testenv.Run(t, "debugfs", "-R", "stat /opt/data/sparse.bin", disk.Image)
	m := regexp.MustCompile(`Blockcount: (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("debugfs stat shows no block count:\n%s", out)
	}
	if n, _ := strconv.Atoi(m[1]); n != 257*8 {
		t.Errorf("sparse.bin uses %d sectors, want %d (257 blocks)\n%s", n, 257*8, out)
	}
	got, err := exec.Command(testenv.Tool(t, "debugfs"), "-R", "cat /opt/data/sparse.bin", disk.Image).Output()
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("sparse.bin in the image differs from its source (%v)", err)
	}
}

// A build leaves GOMAXPROCS alone, while writing too: it is the
// process's, not a library's, to change.
func TestBuildKeepsGOMAXPROCS(t *testing.T) {
	src := t.TempDir()
	testfs.WriteFiles(t, src, map[string]string{"opt/a": strings.Repeat("a", 1<<20)})
	f, r := loadRole(t, writeFleet(t, src), "r")
	before := runtime.GOMAXPROCS(0)
	seen := map[int]bool{}
	res, err := Build(context.Background(), f, r, Options{Output: t.TempDir(), Progress: func(done, total int64) {
		seen[runtime.GOMAXPROCS(0)] = true
	}})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Fsck(t, res.Image)
	if len(seen) != 1 || !seen[before] {
		t.Errorf("GOMAXPROCS during the build: %v, want only %d", seen, before)
	}
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS %d after the build, want %d", got, before)
	}
}

// A build whose sidecar cannot be put in place leaves the image that was
// there before, or none; a build over an earlier one leaves no temporary.
func TestCommitPairRollsBack(t *testing.T) {
	src := t.TempDir()
	testfs.WriteFiles(t, src, map[string]string{"opt/a": "a\n"})
	f, r := loadRole(t, writeFleet(t, src), "r")
	out := t.TempDir()
	img := filepath.Join(out, "x.img")

	// Over an earlier image: replaced, nothing else left behind.
	if err := os.WriteFile(img, []byte("earlier image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(context.Background(), f, r, Options{Output: img}); err != nil {
		t.Fatal(err)
	}
	if got := testfs.Names(t, out); len(got) != 2 {
		t.Fatalf("after a build over an earlier image: %v, want the image and its sidecar", got)
	}

	// The sidecar's place is taken by a directory: the build fails and the
	// image it had put in place is taken back out, the earlier one back in.
	if err := os.WriteFile(img, []byte("earlier image"), 0o644); err != nil {
		t.Fatal(err)
	}
	side := img + ".manifest.json"
	os.Remove(side)
	testfs.WriteFiles(t, side, map[string]string{"keep": "x"})
	if _, err := Build(context.Background(), f, r, Options{Output: img}); !errors.Is(err, ErrOutput) {
		t.Fatalf("got %v, want ErrOutput", err)
	}
	if b, err := os.ReadFile(img); err != nil || string(b) != "earlier image" {
		t.Errorf("image after the failed build: %q, %v; want the earlier one back", b, err)
	}
	if got := testfs.Names(t, out); len(got) != 2 {
		t.Errorf("after the failed build: %v, want only the earlier image and the directory", got)
	}

	// With no earlier image, none is left.
	os.Remove(img)
	if _, err := Build(context.Background(), f, r, Options{Output: img}); !errors.Is(err, ErrOutput) {
		t.Fatalf("got %v, want ErrOutput", err)
	}
	if _, err := os.Lstat(img); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an image without its sidecar was left: %v", err)
	}
}

// Builds of one target from different inputs, at the same time, leave an
// image and the sidecar that describes it, and nothing else.
func TestConcurrentBuildsOfOneTarget(t *testing.T) {
	var fleets [2]struct {
		f *roles.Fleet
		r *roles.Role
	}
	for i := range fleets {
		src := t.TempDir()
		testfs.WriteFiles(t, src, map[string]string{"opt/a": strings.Repeat("release "+strconv.Itoa(i), 1000)})
		fleets[i].f, fleets[i].r = loadRole(t, writeFleet(t, src), "r")
	}
	out := t.TempDir()
	img := filepath.Join(out, "x.img")
	for round := range 10 {
		var wg sync.WaitGroup
		errs := make([]error, len(fleets))
		for i, fl := range fleets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = Build(context.Background(), fl.f, fl.r, Options{Output: img, SHA256: true})
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := testfs.ReadJSON[sidecar](t, img+".manifest.json").Image.SHA256; got != testfs.FileSHA256(t, img) {
			t.Fatalf("round %d: the sidecar describes image %s, the image is %s", round, got, testfs.FileSHA256(t, img))
		}
		if got := testfs.Names(t, out); len(got) != 2 {
			t.Fatalf("round %d: %v, want the image and its sidecar", round, got)
		}
	}
}
