// Package testenv is what tests ask of the machine they run on: root, an
// installed program, a clean e2fsck. A test that cannot run here skips,
// or fails when OLIMAGE_TEST_DISALLOW_SKIP is set, as CI sets it, so that
// a check that never ran is never counted as passed. It makes no fixtures
// (see internal/testfs) and is imported only by tests.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// DisallowSkip reports whether a test that cannot run must fail rather
// than skip.
func DisallowSkip() bool { return os.Getenv("OLIMAGE_TEST_DISALLOW_SKIP") != "" }

// Skip skips t, saying why, or fails it when skips are disallowed.
func Skip(t testing.TB, why string) {
	t.Helper()
	if DisallowSkip() {
		t.Fatalf("cannot skip with OLIMAGE_TEST_DISALLOW_SKIP set: %s", why)
	}
	t.Skip(why)
}

// Skipf is Skip with a format.
func Skipf(t testing.TB, format string, args ...any) {
	t.Helper()
	Skip(t, fmt.Sprintf(format, args...))
}

// Tool returns the path of the program name, or skips t without it.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skipf(t, "%s is not installed (.ci/run lists the Debian packages the tests use)", name)
	}
	return p
}

// Run runs the installed program name with args and returns what it
// printed, stdout and stderr together; it fails t if the program fails,
// and skips t without it.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(Tool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// RequireRoot skips t unless it runs as root; why says what needs it.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, why+" needs root")
	}
}

// fsckClean matches every line e2fsck -fn prints for a clean file system:
// the version, the pass headers and the summary.
var fsckClean = regexp.MustCompile(`^(e2fsck \S+ \(.*\)|Pass [1-5]: .*|\S*: \d+/\d+ files \(.*\), \d+/\d+ blocks)$`)

// Fsck runs e2fsck -fn on the ext4 image img and fails t on a non-zero
// exit or on any line beyond the pass headers and the summary: a clean
// exit can still come with a warning.
func Fsck(t testing.TB, img string) {
	t.Helper()
	out, err := exec.Command(Tool(t, "e2fsck"), "-fn", img).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", img, err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !fsckClean.MatchString(line) {
			t.Fatalf("e2fsck -fn %s: unexpected output %q\n%s", img, line, out)
		}
	}
}

// FsckExit runs e2fsck -fn on img and fails t on a non-zero exit only:
// for images other tools made, of which e2fsck may say what it would
// optimize ("extent tree could be narrower") without finding a fault.
func FsckExit(t testing.TB, img string) {
	t.Helper()
	out, err := exec.Command(Tool(t, "e2fsck"), "-fn", img).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", img, err, out)
	}
}
