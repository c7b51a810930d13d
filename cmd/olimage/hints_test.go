package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/spf13/cobra"
)

// TestErrorHints runs a failing command line of every command and checks
// that each exits 2 and prints its error, then one hint that says what to
// do next: not the generic pointer at --help.
func TestErrorHints(t *testing.T) {
	dir := t.TempDir()
	fleet := tinyFleet(t, filepath.Join(dir, "fleet"), "x\n")
	img := filepath.Join(dir, "r.img")
	mustRun(t, "-q", "-f", fleet, "build", "r", "-o", img)
	junk := filepath.Join(dir, "junk.txt")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not an image\n", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.img")
	broken := filepath.Join(dir, "broken")
	testfs.WriteFiles(t, broken, map[string]string{
		"olimage.yaml":  "fleet: t\n",
		"roles/m.yaml":  "overlays: [{name: s, dir: gone}]\n",
		"roles/y.yaml":  "overlays: [{name: s, dri: src}]\n",
		"src/opt/x.txt": "x",
	})
	oneBroken := filepath.Join(dir, "one-broken")
	testfs.WriteFiles(t, oneBroken, map[string]string{
		"olimage.yaml":  "fleet: t\n",
		"roles/g.yaml":  "overlays: [{name: s, dir: src}]\n",
		"roles/y.yaml":  "overlays: [{name: s, dri: src}]\n",
		"src/opt/x.txt": "x",
	})
	// One role for each kind of error a fleet's author meets.
	kinds := filepath.Join(dir, "kinds")
	testfs.WriteFiles(t, kinds, map[string]string{
		"olimage.yaml":        "fleet: t\npolicy: {forbid: [\"**/*.orig\"]}\nsources: {max_unpacked: 1KiB}\n",
		"roles/conflict.yaml": "overlays: [{name: a, dir: src}, {name: b, dir: src, conflict: error}]\n",
		"roles/toplevel.yaml": "overlays: [{name: a, files: [{path: lib/x, content: x}]}]\n",
		"roles/reserved.yaml": "overlays: [{name: a, files: [{path: .olimage/x, content: x}]}]\n",
		"roles/secret.yaml":   "secrets: [{path: etc/app/secret.yml}]\noverlays: [{name: a, files: [{path: etc/app/secret.yml, content: x}]}]\n",
		"roles/policy.yaml":   "overlays: [{name: a, files: [{path: opt/x.orig, content: x}]}]\n",
		"roles/outside.yaml":  "overlays: [{name: a, dir: /etc/ssl}]\n",
		"roles/bomb.yaml":     "overlays: [{name: a, tar: big.tar}]\n",
		"roles/unsafe.yaml":   "overlays: [{name: a, tar: unsafe.tar}]\n",
		"src/opt/x.txt":       "x",
		"big.tar":             testfs.Tar(t, map[string]string{"opt/big": strings.Repeat("x", 8<<10)}),
		"unsafe.tar":          testfs.Tar(t, map[string]string{"../evil": "x"}),
	})
	cases := []struct {
		args []string
		hint string // in the hint line
	}{
		{[]string{"buidl"}, "did you mean 'olimage build'"},
		{[]string{"-q", "-v", "roles"}, "give one of them"},
		{[]string{"-f", dir, "roles"}, "point -f"},
		{[]string{"-f", filepath.Join(dir, "nowhere"), "validate"}, "point -f"},
		{[]string{"-f", fleet, "plan", "nosuch"}, "olimage roles"},
		{[]string{"-f", fleet, "explain", "r"}, "usage: olimage explain ROLE PATH"},
		{[]string{"-f", broken, "plan", "m"}, "put the source in place at " + filepath.Join(broken, "gone") + ", or fix the overlay declared at " + filepath.Join(broken, "roles/m.yaml") + ":1"},
		{[]string{"-f", broken, "plan", "y"}, "fix " + filepath.Join(broken, "roles/y.yaml") + ":1"},
		{[]string{"-f", oneBroken, "build", "--all", "-o", filepath.Join(dir, "out")}, "roles/y.yaml:1; 'olimage validate' lists every problem"},
		{[]string{"-f", fleet, "explain", "r", "opt/nope"}, "'olimage plan r'"},
		{[]string{"-f", kinds, "plan", "conflict"}, "conflict: (override, identical, error)"},
		{[]string{"-f", kinds, "build", "toplevel", "-o", dir}, "'olimage plan toplevel' lists every path"},
		{[]string{"-f", kinds, "build", "reserved", "-o", dir}, "'olimage plan reserved' lists every path"},
		{[]string{"-f", kinds, "build", "secret", "-o", dir}, "a secret reaches a VM at activation"},
		{[]string{"-f", kinds, "build", "policy", "-o", dir}, "policy: {allow: [{path: GLOB, reason: ...}]}"},
		{[]string{"-f", kinds, "plan", "outside"}, "allow it in olimage.yaml as the message says"},
		{[]string{"-f", kinds, "plan", "bomb"}, "allow it in olimage.yaml as the message says"},
		{[]string{"-f", kinds, "plan", "unsafe"}, "re-create the source without the entry"},
		{[]string{"-f", fleet, "build"}, "for example: olimage build"},
		{[]string{"-f", fleet, "build", "r", "-o", junk}, "give -o a directory"},
		{[]string{"-f", fleet, "build", "r", "-o", filepath.Join(dir, "no/r.img")}, "mkdir -p"},
		{[]string{"-f", fleet, "build", "r", "--compress", "xz", "-o", dir}, "--compress zstd for a compressed image"},
		{[]string{"-f", fleet, "build", "r", "-o", "/proc/r.img"}, "give -o a directory you may write in"},
		{[]string{"inspect", missing}, "'olimage build ROLE -o DIR' writes images"},
		{[]string{"inspect", junk}, "give an image olimage build wrote"},
		{[]string{"ls", img, "nope"}, "olimage ls -R " + img},
		{[]string{"cat", img, "nope"}, "olimage ls -R " + img},
		{[]string{"cat", img, "opt"}, "list it with olimage ls"},
		{[]string{"extract", img, filepath.Join(dir, "x"), "nope"}, "olimage ls -R " + img},
		{[]string{"extract", img, junk}, "new or empty directory"},
		{[]string{"verify", junk}, "give an image olimage build wrote"},
		{[]string{"verify", img, "--key", filepath.Join(dir, "missing.pub")}, "public key (KEY.pub)"},
		{[]string{"verify", img, "--expect-root-hash", "abc"}, "usage: olimage verify IMAGE"},
		{[]string{"sign", img, "--key", filepath.Join(dir, "missing")}, "private key to sign with"},
		{[]string{"sign", img, "--key", img + ".manifest.json"}, "not KEY.pub"},
		{[]string{"diff", img, missing}, "A and B are"},
		{[]string{"-f", fleet, "diff", img, "nosuch"}, "a role of the fleet"},
		{[]string{"push", missing, "localhost:1/x:y"}, "IMAGE.manifest.json beside each image"},
		// A path holding "401" or "403" is no sign of a refused login.
		{[]string{"push", filepath.Join(dir, "403", "401.img"), "localhost:1/x:y"}, "IMAGE.manifest.json beside each image"},
		{[]string{"pull", "localhost:1/x:y", "-o", filepath.Join(dir, "p.img")}, "registry is up and reachable"},
		{[]string{"sbom", junk}, "give an image olimage build wrote"},
		{[]string{"sysusers", missing}, "writes images"},
		{[]string{"fstab", missing}, "writes images"},
		{[]string{"fstab", img, "--write", "--root", t.TempDir()}, "--root names the root file system to change"},
		{[]string{"mount-unit", missing}, "writes images"},
		{[]string{"veritytab", img, "--sidecar", filepath.Join(dir, "missing.json")}, "name it with --sidecar"},
		{[]string{"activate", img}, "usage: olimage activate"},
		{[]string{"deactivate", "x"}, "usage: olimage deactivate"},
		{[]string{"recover", "x"}, "usage: olimage recover"},
		{[]string{"status", "x"}, "usage: olimage status"},
		{[]string{"switch"}, "usage: olimage switch SERVICE BIN"},
		{[]string{"activate-unit", "x"}, "usage: olimage activate-unit"},
		{[]string{"version", "x"}, "usage: olimage version"},
		{[]string{"man"}, "usage: olimage man DIR"},
		{[]string{"completion", "tcsh"}, "the commands are bash, fish"},
	}
	covered := map[string]bool{}
	for _, c := range cases {
		stdout, stderr, code := olimage(t, c.args...)
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		last := lines[len(lines)-1]
		if code != exitError || !strings.HasPrefix(stderr, "olimage: error: ") || !strings.HasPrefix(last, "olimage: hint: ") || strings.Count(stderr, "olimage: hint:") != 1 {
			t.Errorf("%q: exit %d, want 2, the error, then one hint:\n%s%s", c.args, code, stdout, stderr)
			continue
		}
		if strings.Contains(stderr, ".olimage-") || strings.Contains(stderr, ".tmp-") {
			t.Errorf("%q: an error names a temporary file:\n%s", c.args, stderr)
		}
		if strings.Contains(last, "--help") || strings.Contains(last, "olimage help") || !strings.Contains(last, c.hint) {
			t.Errorf("%q: %s\nwant a hint saying %q", c.args, last, c.hint)
		}
		root := newRoot(&env{})
		if cmd, _, err := root.Find(c.args); err == nil {
			covered[cmd.Name()] = true
		}
	}
	for _, cmd := range newRoot(&env{}).Commands() {
		if !covered[cmd.Name()] && cmd.Name() != "help" {
			t.Errorf("no failing command line of %s in the table", cmd.Name())
		}
	}
}

// An error of no known kind (a defect, say) is not answered with the
// command's usage line, which would blame a command line that was fine.
func TestUnknownErrorHint(t *testing.T) {
	cmd := &cobra.Command{Use: "olimage validate", Example: "  olimage validate"}
	got := hintFor(cmd, errors.New("manifest: measured, not written"))
	if strings.HasPrefix(got, "usage:") || !strings.Contains(got, "report") {
		t.Fatalf("hint for an unknown error = %q, want the report hint, not the usage line", got)
	}
	if got := hintFor(cmd, usageError{errors.New("bad flag")}); !strings.HasPrefix(got, "usage:") {
		t.Fatalf("hint for a usage error = %q, want the usage line", got)
	}
}
