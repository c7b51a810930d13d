package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/internetarchive/olimage/internal/golden"
	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/trace"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/operand"
)

// release builds ol-web from a copy of the example fleet changed by edit,
// and returns the image path.
func release(t *testing.T, name string, edit func(fleet string)) string {
	t.Helper()
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet")
	copyTree(t, exampleFleet, fleet, false, -1, time.Now())
	if edit != nil {
		edit(fleet)
	}
	out := filepath.Join(dir, name)
	if o, e, code := olimage(t, "-f", fleet, "build", "ol-web", "-o", out+".img"); code != 0 {
		t.Fatalf("build %s: exit %d\n%s%s", name, code, o, e)
	}
	return out + ".img"
}

// secondRelease changes the example the way a release does: a config
// edited in olsystem, a mode changed, a file gone, one added.
func secondRelease(fleet string) {
	nginx := filepath.Join(fleet, "sources/olsystem/etc/nginx/nginx.conf")
	data, _ := os.ReadFile(nginx)
	os.WriteFile(nginx, []byte(strings.Replace(string(data), "worker_processes auto;", "worker_processes 8;", 1)), 0o644)
	os.Chmod(filepath.Join(fleet, "sources/olsystem/bin/ol-deploy-status"), 0o644)
	os.Remove(filepath.Join(fleet, "sources/petabox/opt/petabox/README"))
	os.WriteFile(filepath.Join(fleet, "overlays/base/opt/openlibrary/RELEASE"), []byte("2024.02\n"), 0o644)
}

// scrub replaces the test's temporary directory in output with $TMP.
func scrub(s, img string) string {
	return strings.ReplaceAll(s, filepath.Dir(img), "$TMP")
}

func TestReadCommandsGolden(t *testing.T) {
	a := release(t, "a", nil)
	b := release(t, "b", secondRelease)
	cases := []struct {
		file string
		code int
		args []string
	}{
		{"inspect.txt", 0, []string{"inspect", a}},
		{"inspect.json", 0, []string{"inspect", "--json", a}},
		{"ls.txt", 0, []string{"ls", a, "opt/openlibrary"}},
		{"ls-R-etc.txt", 0, []string{"ls", "-R", a, "etc"}},
		{"cat-readme.txt", 0, []string{"cat", a, "opt/openlibrary/README"}},
		{"diff.txt", 1, []string{"diff", a, b}},
		{"diff.json", 1, []string{"diff", "--json", a, b}},
		{"diff-content.txt", 1, []string{"diff", "--content", "--path", "opt/openlibrary/deploys/olsystem/**/nginx.conf", "--path", "opt/openlibrary/RELEASE", a, b}},
		{"diff-content.json", 1, []string{"diff", "--json", "--content", "--path", "opt/openlibrary/deploys/olsystem/**/nginx.conf", "--path", "opt/openlibrary/RELEASE", a, b}},
		{"diff-same.txt", 0, []string{"diff", a, a}},
		{"verify.txt", 0, []string{"verify", a}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			out, errOut, code := olimage(t, tc.args...)
			if code != tc.code {
				t.Fatalf("olimage %s: exit %d, want %d\n%s", strings.Join(tc.args, " "), code, tc.code, errOut)
			}
			out = strings.ReplaceAll(scrub(out, a), filepath.Dir(b), "$TMP")
			golden.Check(t, filepath.Join("testdata", "golden", "read", tc.file), []byte(out))
		})
	}
}

// TestCatSymlinkAndMissing covers cat's refusals.
func TestCatSymlinkAndMissing(t *testing.T) {
	a := release(t, "a", nil)
	if _, e, code := olimage(t, "cat", a, "etc/nginx/nginx.conf"); code != 2 || !strings.Contains(e, "is a symlink to /opt/openlibrary/olsystem/etc/nginx/nginx.conf") {
		t.Errorf("cat of a symlink: exit %d, %s", code, e)
	}
	if _, e, code := olimage(t, "cat", a, "etc/nope"); code != 2 || !strings.Contains(e, "etc/nope") {
		t.Errorf("cat of a missing path: exit %d, %s", code, e)
	}
}

// TestDiffViaManifestsAndContent checks that two olimage images compare by
// manifest, an image and a role by content, and both agree.
func TestDiffSources(t *testing.T) {
	a := release(t, "a", nil)
	b := release(t, "b", secondRelease)
	kinds := func(args ...string) (string, string) {
		out, e, code := olimage(t, append([]string{"diff", "--json"}, args...)...)
		if code != 1 {
			t.Fatalf("diff %v: exit %d: %s", args, code, e)
		}
		var d struct {
			A, B    struct{ Kind string }
			Summary struct{ Added, Removed, Modified int }
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatal(err)
		}
		return d.A.Kind + "/" + d.B.Kind, strconv.Itoa(d.Summary.Added) + "+" + strconv.Itoa(d.Summary.Removed) + "-" + strconv.Itoa(d.Summary.Modified)
	}
	_, want := kinds(a, b)
	for _, args := range [][]string{
		{a + ".manifest.json", b},
		{a, b + ".manifest.json"},
		{"-f", exampleFleet, "ol-web", b},
	} {
		if _, got := kinds(args...); got != want {
			t.Errorf("diff %v: summary %s, want %s", args, got, want)
		}
	}
	// Read in full (compared byte by byte) or via manifests, two images
	// give the same report.
	viaManifests, _, _ := olimage(t, "diff", a, b)
	full, e, code := olimage(t, "diff", "--no-manifests", a, b)
	if code != 1 || full != viaManifests {
		t.Errorf("diff --no-manifests: exit %d (%s), report:\n%s\nvia manifests:\n%s", code, e, full, viaManifests)
	}
	// A released image against the fleet it came from: nothing to say.
	if out, e, code := olimage(t, "-f", exampleFleet, "diff", a, "ol-web"); code != 0 {
		t.Errorf("diff image role: exit %d\n%s%s", code, out, e)
	}
}

func TestExtract(t *testing.T) {
	a := release(t, "a", nil)
	dir := filepath.Join(t.TempDir(), "x")
	mustRun(t, "extract", a, dir)
	// The extracted tree, read as a directory source, must be the image's.
	ls := func(args ...string) string {
		out, _ := exec.Command("find", append(args, "-mindepth", "1", "-printf", "%P %y %m %U:%G %s %l\n")...).Output()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var keep []string
		for _, l := range lines {
			l = strings.TrimSpace(l)
			if !strings.HasPrefix(l, "lost+found") && !strings.HasPrefix(l, ".olimage") {
				keep = append(keep, l)
			}
		}
		sort.Strings(keep) // directory order differs between file systems
		return strings.Join(keep, "\n")
	}
	mnt := t.TempDir()
	testenv.MountLoop(t, a, mnt, "ro")
	want, got := ls(mnt), ls(dir)
	if want != got {
		t.Errorf("extracted tree differs from the mounted image:\nmounted:\n%s\nextracted:\n%s", want, got)
	}
	if _, e, code := olimage(t, "extract", a, dir); code != 2 || !strings.Contains(e, "not empty") {
		t.Errorf("extract into a non-empty directory: exit %d, %s", code, e)
	}
	sub := filepath.Join(t.TempDir(), "etc")
	if out, e, code := olimage(t, "extract", a, sub, "etc/nginx"); code != 0 || !strings.Contains(out, "4 entries") {
		t.Errorf("extract of a subtree: exit %d\n%s%s", code, out, e)
	}
}

// TestExtractAsNobody runs extract as an unprivileged user: it must work
// and say that owners were not set.
func TestExtractAsNobody(t *testing.T) {
	testenv.RequireRoot(t, "switching to nobody")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		testenv.Skip(t, "setpriv not installed (util-linux)")
	}
	a := release(t, "a", nil)
	bin := filepath.Join(t.TempDir(), "olimage")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := t.TempDir()
	// t.TempDir's directories are private to root: open them, and
	// their parent, to nobody.
	for _, p := range []string{work, filepath.Dir(a), filepath.Dir(bin), filepath.Dir(work)} {
		os.Chmod(p, 0o777)
	}
	os.Chmod(a, 0o644)
	dir := filepath.Join(work, "x")
	out, err := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "extract", a, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("extract as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "not root: owners not set") {
		t.Errorf("extract as nobody does not say owners were not set:\n%s", out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "opt/openlibrary/README"))
	if err != nil || len(data) == 0 {
		t.Errorf("extracted README: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(dir, "opt/openlibrary/README"), &st); err != nil || st.Uid != 65534 {
		t.Errorf("extracted file owned by %d, want nobody (65534): %v", st.Uid, err)
	}
}

// TestManifestMapped checks the fast path diff reads manifests through:
// olimage writes the manifest in one run of blocks, and the bytes mapped
// from the image are the bytes the reader returns.
func TestManifestMapped(t *testing.T) {
	a := release(t, "a", nil)
	src, err := operand.OpenImage(context.Background(), a, operand.NoTree)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	off, n, ok, err := src.FS().Contiguous(manifest.Path)
	if err != nil || !ok {
		t.Fatalf("Contiguous(%s) = %d, %d, %v, %v; want one run", manifest.Path, off, n, ok, err)
	}
	mapped, unmap, ok := src.File().Map(off, n)
	if !ok {
		t.Fatal("Map failed on a raw image")
	}
	defer unmap()
	rc, err := src.FS().Open(manifest.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	read, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mapped, read) {
		t.Errorf("mapped manifest (%d bytes) differs from the one read (%d bytes)", len(mapped), len(read))
	}
	if _, _, ok, _ := src.FS().Contiguous("opt/openlibrary"); ok {
		t.Error("Contiguous says a directory is one run of file content")
	}
}

// An image whose embedded manifest is broken is not compared by it: diff
// says so and how to compare the contents instead, which works.
func TestDiffBrokenManifest(t *testing.T) {
	a := release(t, "a", nil)
	data, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("\n  \"entries\": ["))
	j := bytes.Index(data[max(i, 0):], []byte("\n  ]\n}"))
	if i < 0 || j < 0 {
		t.Fatal("no manifest found in the image")
	}
	data[i+j+3] = 'x' // the entries array no longer closes
	broken := filepath.Join(t.TempDir(), "broken.img")
	if err := os.WriteFile(broken, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, e, code := olimage(t, "diff", a, broken)
	if code != 2 || !strings.Contains(e, "the manifest in "+broken) || !strings.Contains(e, "--no-manifests") {
		t.Errorf("diff with a broken manifest: exit %d, want 2 naming %s with a hint\n%s", code, broken, e)
	}
	if out, e, code := olimage(t, "diff", "--no-manifests", a, broken); code != 0 {
		t.Errorf("diff --no-manifests: exit %d\n%s%s", code, out, e)
	}
}

// TestReadFollowAndGlob checks cat -L and extract -L, which follow
// symlinks inside the image (an absolute target from the volume root), and
// cat of a pattern that matches one file.
func TestReadFollowAndGlob(t *testing.T) {
	a := release(t, "a", nil)
	want, err := os.ReadFile(filepath.Join(exampleFleet, "sources/olsystem/etc/nginx/nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// etc/nginx/nginx.conf -> /opt/openlibrary/olsystem/etc/nginx/nginx.conf,
	// and opt/openlibrary/olsystem -> deploys/olsystem/REVISION.
	for _, args := range [][]string{
		{"cat", "-L", a, "etc/nginx/nginx.conf"},
		{"cat", "-L", a, "/opt/openlibrary/olsystem/etc/nginx/nginx.conf"},
		{"cat", a, "opt/openlibrary/deploys/olsystem/*/etc/nginx/nginx.conf"},
		{"cat", a, "opt/openlibrary/deploys/olsy?tem/[a-f0-9]*/etc/nginx/nginx.con[f]"},
	} {
		out, e, code := olimage(t, args...)
		if code != 0 || out != string(want) {
			t.Errorf("olimage %s: exit %d, %d bytes (want %d)\n%s", strings.Join(args, " "), code, len(out), len(want), e)
		}
	}
	if _, e, code := olimage(t, "cat", a, "opt/openlibrary/deploys/*/nothing*"); code != 2 || !strings.Contains(e, "matches nothing") {
		t.Errorf("cat of a pattern matching nothing: exit %d, %s", code, e)
	}
	if _, e, code := olimage(t, "cat", a, "etc/nginx/*"); code != 2 || !strings.Contains(e, "matches") || !strings.Contains(e, "etc/nginx/nginx.conf") {
		t.Errorf("cat of a pattern matching several: exit %d, %s", code, e)
	}

	dir := filepath.Join(t.TempDir(), "x")
	mustRun(t, "extract", "-L", a, dir, "etc/nginx/nginx.conf")
	var found []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if got, _ := os.ReadFile(p); string(got) == string(want) {
				found = append(found, p)
			}
		}
		return nil
	})
	if len(found) != 1 {
		t.Errorf("extract -L of a symlink to a file: got %d copies of the target in %s, want 1", len(found), dir)
	}
}

// TestExtractSparse extracts a file that is mostly holes: the holes stay
// holes on the host, and the content reads back the same.
func TestExtractSparse(t *testing.T) {
	fleet := tinyFleet(t, t.TempDir(), "")
	big := filepath.Join(fleet, "src/opt/app/big")
	const size = 64 << 20
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("head"), 0)
	f.WriteAt([]byte("tail"), size-4)
	f.Close()
	img := buildRole(t, fleet, "r")
	dir := filepath.Join(t.TempDir(), "x")
	mustRun(t, "extract", img, dir)
	got := filepath.Join(dir, "opt/app/big")
	var st syscall.Stat_t
	if err := syscall.Stat(got, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != size || st.Blocks*512 > 1<<20 {
		t.Errorf("extracted: %d bytes taking %d on disk, want %d bytes taking at most 1 MiB", st.Size, st.Blocks*512, size)
	}
	g, err := os.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	const seekData = 3 // SEEK_DATA
	if off, err := g.Seek(4096, seekData); err != nil || off != size-4096 {
		t.Errorf("first data after the head at %d (%v), want %d: the middle is not a hole", off, err, size-4096)
	}
	if out, err := exec.Command("cmp", big, got).CombinedOutput(); err != nil {
		t.Errorf("extracted content differs: %v %s", err, out)
	}
}

// TestNamesQuoted reads images that another tool made from names olimage
// would refuse to build: a newline and a forged diff line in a file name,
// a newline in a symlink's target and in the label. ls, diff and inspect
// show them quoted, one line each, so no line of their output is forged.
func TestNamesQuoted(t *testing.T) {
	mkfs := testenv.Tool(t, "mkfs.ext4")
	const evil = "evil\n  +    fake"
	images := map[string]string{}
	for _, side := range []string{"a", "b"} {
		src := t.TempDir()
		os.MkdirAll(filepath.Join(src, "opt"), 0o755)
		os.WriteFile(filepath.Join(src, "opt", `"q"`), []byte(side), 0o644)
		os.Symlink("/etc/"+side+"\nlrwxrwxrwx forged", filepath.Join(src, "opt", "link"))
		if side == "a" {
			os.WriteFile(filepath.Join(src, "opt", evil), []byte("x"), 0o644)
		}
		img := filepath.Join(t.TempDir(), side+".img")
		if out, err := exec.Command(mkfs, "-q", "-L", "l\nlabel: x", "-d", src, img, "8M").CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v\n%s", err, out)
		}
		images[side] = img
	}
	a, b := images["a"], images["b"]
	for _, tc := range []struct {
		args []string
		code int
		want []string // quoted, each within one line
		line string   // what every line of output must look like
	}{
		{[]string{"ls", "-R", a, "opt"}, 0, []string{`"opt/evil\n  +    fake"`, `-> "/etc/a\nlrwxrwxrwx forged"`, "opt/\"q\"\n"}, `^[-dl][-rwxsStT]{9} `},
		{[]string{"ls", a, "opt"}, 0, []string{`"evil\n  +    fake"`, ` "\"q\""`}, `^[-dl][-rwxsStT]{9} `},
		{[]string{"diff", a, b}, 1, []string{`-    "opt/evil\n  +    fake"`, `"/etc/b\nlrwxrwxrwx forged" (was "/etc/a\nlrwxrwxrwx forged")`}, `^($|opt/$|\d+ added, |  [-+MLRTmoxt]+ +\S|activation:$|[-+] (link|state) )`},
		{[]string{"inspect", a}, 0, []string{`label:     "l\nlabel: x"`}, `^(\w+: |  )`},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			out, e, code := olimage(t, tc.args...)
			if code != tc.code {
				t.Fatalf("olimage %s: exit %d, want %d\n%s%s", strings.Join(tc.args, " "), code, tc.code, out, e)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("olimage %s does not show %s:\n%s", tc.args[0], w, out)
				}
			}
			line := regexp.MustCompile(tc.line)
			for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if !line.MatchString(l) {
					t.Errorf("olimage %s: line %q is not one of its own", tc.args[0], l)
				}
			}
		})
	}
}

// TestDiffLoadsFleetOnce: a diff of two roles loads the fleet once, not
// once for each side (nor twice for each, as it did).
func TestDiffLoadsFleetOnce(t *testing.T) {
	var mu sync.Mutex
	loads := 0
	ctx := trace.WithNotes(context.Background(), func(line string) {
		if strings.HasPrefix(line, "fleet ") && strings.Contains(line, ": loaded ") {
			mu.Lock()
			loads++ // every note, not each line once as -v prints them
			mu.Unlock()
		}
	})
	var stdout, stderr bytes.Buffer
	e := &env{ctx: ctx, stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr}
	root := newRoot(e)
	root.SetArgs([]string{"-f", exampleFleet, "diff", "ol-web", "ol-mem"})
	if err := root.ExecuteContext(ctx); !errors.Is(err, errFindings) {
		t.Fatalf("diff ol-web ol-mem: %v, want that they differ\n%s%s", err, stdout.String(), stderr.String())
	}
	if loads != 1 {
		t.Errorf("the fleet was loaded %d times, want once", loads)
	}
}
