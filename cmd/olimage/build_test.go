package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/manifest"
)

// TestBuildUsage checks that every malformed build command line exits 2
// with a message that says what to do, and writes nothing.
func TestBuildUsage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"build", "-o", out}, "build: name the roles to build, or give --all"},
		{[]string{"build", "--all", "ol-db", "-o", out}, "build: name roles or give --all, not both"},
		{[]string{"build", "ol-db", "ol-mem", "ol-db", "-o", out}, "build: role ol-db named twice"},
		{[]string{"build", "ol-db", "-j", "0", "-o", out}, "build: -j 0: want 1 or more"},
		{[]string{"build", "ol-db", "--memory", "lots", "-o", out}, "build: --memory lots: want a size such as 4GiB, or auto"},
		{[]string{"build", "ol-db", "ol-mem", "-o", out + ".img"}, "build: output " + out + ".img takes one role, got 2"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, code := olimage(t, append([]string{"-f", exampleFleet}, tc.args...)...)
			if code != exitError || !strings.Contains(stderr, "olimage: error: "+tc.want) {
				t.Errorf("got exit %d, stderr %q; want exit %d and %q", code, stderr, exitError, tc.want)
			}
			if stdout != "" {
				t.Errorf("stdout: got %q, want nothing", stdout)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("%s was made (%v)", out, err)
			}
		})
	}
}

// binary builds olimage into a temporary directory, for tests that need a
// separate process: to kill it, trace it or signal it.
func binary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "olimage")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// tinyFleet writes a one-role fleet whose one file says content.
func tinyFleet(t *testing.T, dir, content string) string {
	t.Helper()
	testfs.WriteFiles(t, dir, map[string]string{
		"olimage.yaml":     "fleet: t\n",
		"roles/r.yaml":     "overlays: [{name: s, dir: src}]\n",
		"src/opt/app/data": content,
	})
	return dir
}

// buildRole builds role of the fleet in dir into a new temporary
// directory, checks the image with e2fsck and returns its path.
func buildRole(t *testing.T, fleet, role string) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), role+".img")
	mustRun(t, "-f", fleet, "build", role, "-o", img)
	testenv.Fsck(t, img)
	return img
}

// pairSHA256 returns the image's digest and the one its sidecar records.
func pairSHA256(t *testing.T, img string) (file, sidecar string) {
	t.Helper()
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	var side struct {
		Image manifest.ImageFile `json:"image"`
	}
	data, err = os.ReadFile(img + ".manifest.json")
	if err == nil {
		err = json.Unmarshal(data, &side)
	}
	if err != nil {
		t.Fatalf("sidecar: %v", err)
	}
	return hex.EncodeToString(sum[:]), side.Image.SHA256
}

// TestBuildKilled kills a build at each rename it makes (strace fault
// injection) over an earlier build of the same path. A read afterwards
// sees a matching image and sidecar, the earlier pair or the new one, and
// the next build leaves nothing but its pair behind.
func TestBuildKilled(t *testing.T) {
	strace := testenv.Tool(t, "strace")
	bin := binary(t)
	fleetA := tinyFleet(t, t.TempDir(), "release a\n")
	fleetB := tinyFleet(t, t.TempDir(), "release b\n")
	// strace counts a call per thread, and Go makes the three renames on
	// any of its threads: pick each one by the path it renames to (-P),
	// so the first matching call is the one to kill.
	for n, name := range []string{".r.img.commit", "r.img", "r.img.manifest.json"} {
		n++
		t.Run(fmt.Sprintf("rename %d", n), func(t *testing.T) {
			out := t.TempDir()
			img := filepath.Join(out, "r.img")
			if o, err := exec.Command(bin, "-f", fleetA, "build", "r", "-o", img, "--sha256").CombinedOutput(); err != nil {
				t.Fatalf("build a: %v\n%s", err, o)
			}
			before, _ := pairSHA256(t, img)
			trace := filepath.Join(t.TempDir(), "trace")
			calls := "?rename,renameat,renameat2"
			cmd := exec.Command(strace, "-f", "-o", trace, "-e", "signal=none", "-e", "trace="+calls,
				"-P", filepath.Join(out, name), "-e", "inject="+calls+":signal=KILL:when=1",
				bin, "-f", fleetB, "build", "r", "-o", img, "--sha256")
			// strace ends the way the traced build did: killed.
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || !ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
				tr, _ := os.ReadFile(trace)
				t.Fatalf("the build was not killed at rename %d: %v\n%s", n, err, tr)
			}

			// Any read finishes what the killed build decided.
			mustRun(t, "diff", img+".manifest.json", img)
			file, side := pairSHA256(t, img)
			if file != side {
				t.Fatalf("after a kill at rename %d the image (%s) is not the one its sidecar describes (%s)", n, file, side)
			}
			if n == 1 && file != before {
				t.Errorf("killed before the replacement was decided, yet the image changed")
			}

			if o, err := exec.Command(bin, "-f", fleetB, "build", "r", "-o", img, "--sha256").CombinedOutput(); err != nil {
				t.Fatalf("build b again: %v\n%s", err, o)
			}
			if got := testfs.Names(t, out); strings.Join(got, " ") != "r.img r.img.manifest.json" {
				t.Errorf("after the next build the directory holds %v, want only the image and its sidecar", got)
			}
			if file, side := pairSHA256(t, img); file != side || file == before {
				t.Errorf("after the next build: image %s, sidecar says %s, earlier image %s", file, side, before)
			}
			testenv.Fsck(t, img)
		})
	}
}

// TestBuildOutputRefusals checks the -o names and roles build refuses
// before writing anything: what it says, and that nothing appears.
func TestBuildOutputRefusals(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		made    string // must not exist afterwards
		want    string
		wantNot string
	}{
		{"other extension", []string{"build", "ol-mem", "-o", filepath.Join(dir, "x.raw")}, filepath.Join(dir, "x.raw"),
			"an image file name ends in .img", ""},
		{"missing directory", []string{"build", "ol-mem", "-o", filepath.Join(dir, "missing", "x.img")}, filepath.Join(dir, "missing"),
			"directory " + filepath.Join(dir, "missing") + " does not exist", ".tmp-"},
		{"abstract role", []string{"build", "ol-base", "-o", filepath.Join(dir, "out")}, filepath.Join(dir, "out"),
			"build: role ol-base is abstract", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := olimage(t, append([]string{"-f", exampleFleet}, tc.args...)...)
			if code != exitError || !strings.Contains(stderr, tc.want) {
				t.Errorf("got exit %d, stderr %q; want exit %d and %q", code, stderr, exitError, tc.want)
			}
			if !strings.Contains(stderr, "olimage: hint: ") {
				t.Errorf("stderr %q has no hint", stderr)
			}
			if tc.wantNot != "" && strings.Contains(stderr, tc.wantNot) {
				t.Errorf("stderr %q mentions %q", stderr, tc.wantNot)
			}
			if stdout != "" {
				t.Errorf("stdout: got %q, want nothing", stdout)
			}
			if _, err := os.Stat(tc.made); !os.IsNotExist(err) {
				t.Errorf("%s was made (%v)", tc.made, err)
			}
		})
	}
}

// TestBuildToDevNull checks that -o - accepts /dev/null, a character
// device but not a terminal.
func TestBuildToDevNull(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	var stderr strings.Builder
	if code := Main([]string{"-f", exampleFleet, "build", "ol-mem", "-o", "-"}, strings.NewReader(""), null, &stderr); code != 0 {
		t.Fatalf("build -o - > /dev/null: exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "ol-mem") {
		t.Errorf("stderr %q: want the summary line", stderr.String())
	}
}

// TestBuildRecordsVersion checks that an image's manifest records the
// version olimage was built as (make build sets it with -ldflags).
func TestBuildRecordsVersion(t *testing.T) {
	old := version
	version = "v9.8.7-test"
	t.Cleanup(func() { version = old })
	img := buildRole(t, tinyFleet(t, t.TempDir(), "x\n"), "r")
	out, e, code := olimage(t, "cat", img, ".olimage/manifest.json")
	if code != 0 || !strings.Contains(out, `"olimage": "v9.8.7-test"`) {
		t.Errorf("manifest: exit %d, want olimage v9.8.7-test in:\n%.300s%s", code, out, e)
	}
	if o, _, _ := olimage(t, "--version"); !strings.HasPrefix(o, "olimage v9.8.7-test\n") {
		t.Errorf("--version: got %q", o)
	}
}

// TestBuildProgressPlain checks that a build whose stderr is not a
// terminal (a CI log) prints progress as plain lines, with rate, and that
// -q and --json print none.
func TestBuildProgressPlain(t *testing.T) {
	old := plainEvery
	plainEvery = 0 // every update, so that the tiny build shows some
	t.Cleanup(func() { plainEvery = old })
	fleet := tinyFleet(t, t.TempDir(), strings.Repeat("x", 1<<20))
	_, stderr, code := olimage(t, "-f", fleet, "build", "r", "-o", filepath.Join(t.TempDir(), "r.img"))
	if code != 0 || !regexp.MustCompile(`(?m)^r +\d+% of [0-9.]+ (MiB|KiB)`).MatchString(stderr) || strings.Contains(stderr, "\r") {
		t.Errorf("build, stderr not a terminal: exit %d, want plain progress lines, got:\n%q", code, stderr)
	}
	for _, extra := range []string{"-q", "--json"} {
		_, stderr, code := olimage(t, "-f", fleet, "build", "r", extra, "-o", filepath.Join(t.TempDir(), "r.img"))
		if code != 0 || stderr != "" {
			t.Errorf("build %s: exit %d, stderr %q, want none", extra, code, stderr)
		}
	}
}

// TestTuneGC: while a build runs, its memory budget is the runtime's soft
// memory limit and the heap grows by buildGCPercent between collections,
// unless $GOMEMLIMIT and $GOGC say otherwise; the settings before come
// back after it.
func TestTuneGC(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")
	limit := debug.SetMemoryLimit(-1)
	percent := debug.SetGCPercent(100)
	debug.SetGCPercent(percent)
	restore := tuneGC(600 << 20)
	if got := debug.SetMemoryLimit(-1); got != 600<<20 {
		t.Errorf("limit during the build is %d, want %d", got, 600<<20)
	}
	if got := debug.SetGCPercent(buildGCPercent); got != buildGCPercent {
		t.Errorf("GC percent during the build is %d, want %d", got, buildGCPercent)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Errorf("limit after the build is %d, want %d as before", got, limit)
	}
	if got := debug.SetGCPercent(percent); got != percent {
		t.Errorf("GC percent after the build is %d, want %d as before", got, percent)
	}
	t.Setenv("GOMEMLIMIT", "1GiB")
	t.Setenv("GOGC", "200")
	restore = tuneGC(600 << 20)
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Errorf("with GOMEMLIMIT set the limit is %d, want %d as before", got, limit)
	}
	if got := debug.SetGCPercent(percent); got != percent {
		t.Errorf("with GOGC set the GC percent is %d, want %d as before", got, percent)
	}
	restore()
}
