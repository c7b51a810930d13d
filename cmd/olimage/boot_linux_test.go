package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
)

// TestBootReleases takes the example's ol-web image through what a VM
// does with it, on a fake root with the image loop-mounted read-only at
// /1: activation writes the unit files and links the deploys' active
// links on the root disk, switch moves olsystem to the history bin and
// back, the next release (same label, olsystem changed, the history bin
// dropped) replaces it, and deactivate restores the root.
func TestBootReleases(t *testing.T) {
	testenv.RequireRoot(t, "a loop mount")
	dir := t.TempDir()
	img1 := buildRole(t, exampleFleet, "ol-web")
	// The next release: olsystem changes, the previous olsystem goes.
	next := filepath.Join(dir, "fleet")
	if out, err := exec.Command("cp", "-a", exampleFleet, next).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	nextRelease(t, next)
	img2 := buildRole(t, next, "ol-web")

	vm := newVMRoot(t, dir)
	root, run, unitFile := vm.root, vm.run, vm.unitFile
	before := listing(t, root)
	bin := regexp.MustCompile(`(?m)^deploy +olsystem +(\S+) \((.*)\)$`)

	vm.mount(img1)
	run(exitOK, "activate")
	if u := unitFile(); !strings.HasPrefix(u, "# Written by olimage activate from /1/etc/systemd/system/ol-web.service;") || !strings.Contains(u, "--workers 8") {
		t.Errorf("ol-web.service after activate:\n%s", u)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/ol-web.service")); l != "/etc/systemd/system/ol-web.service" {
		t.Errorf("wants link: %q", l)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/ol-web.service.d/olimage.conf")); !strings.Contains(string(b), "RequiresMountsFor=/1\n") {
		t.Errorf("drop-in:\n%s", b)
	}
	m := bin.FindStringSubmatch(run(exitOK, "status"))
	if m == nil || !strings.Contains(m[2], "the image's; bins: 3f9c2e1a7b04 ") {
		t.Fatalf("status: olsystem %q", m)
	}
	active := m[1]
	if l, _ := os.Readlink(filepath.Join(root, "opt/openlibrary/olsystem")); l != "/1/opt/openlibrary/deploys/olsystem/"+active {
		t.Errorf("/opt/openlibrary/olsystem -> %q", l)
	}

	run(exitOK, "switch", "olsystem", "3f9c2e1a7b04")
	if u := unitFile(); !strings.Contains(u, "--workers 6") {
		t.Errorf("ol-web.service after switching to the history bin:\n%s", u)
	}
	if m := bin.FindStringSubmatch(run(exitOK, "status")); m == nil || m[1] != "3f9c2e1a7b04" || !strings.HasPrefix(m[2], "switched from "+active) {
		t.Errorf("status after switch: %q", m)
	}
	run(exitOK, "activate") // as at the next boot: the switch holds
	if m := bin.FindStringSubmatch(run(exitOK, "status")); m == nil || m[1] != "3f9c2e1a7b04" {
		t.Errorf("status after re-activate: %q", m)
	}
	run(exitOK, "switch", "olsystem", active)
	if u := unitFile(); !strings.Contains(u, "--workers 8") {
		t.Errorf("ol-web.service after switching back:\n%s", u)
	}

	// The next release, same label, in place of the first.
	vm.umount()
	vm.mount(img2)
	out := run(exitOK, "activate")
	for _, want := range []string{"unlink  /opt/openlibrary/olsystem", "write   /etc/systemd/system/ol-web.service"} {
		if !strings.Contains(out, want) {
			t.Errorf("activate the next release: no %q in\n%s", want, out)
		}
	}
	if u := unitFile(); !strings.Contains(u, "--workers 12") {
		t.Errorf("ol-web.service of the next release:\n%s", u)
	}
	m = bin.FindStringSubmatch(run(exitOK, "status"))
	if m == nil || m[1] == active || strings.Contains(m[2], "3f9c2e1a7b04") {
		t.Errorf("status of the next release: olsystem %q", m)
	}
	run(exitError, "switch", "olsystem", "3f9c2e1a7b04") // dropped with the release

	run(exitOK, "deactivate")
	vm.umount()
	if got := listing(t, root); got != before {
		t.Errorf("after deactivate:\n%s\nwant\n%s", got, before)
	}
}

// nextRelease edits a copy of the example fleet into its next release:
// olsystem's unit changes (8 workers to 12) and the olsystem-previous
// overlay goes.
func nextRelease(t *testing.T, fleet string) {
	t.Helper()
	unit := filepath.Join(fleet, "sources/olsystem/etc/systemd/system/ol-web.service")
	b, _ := os.ReadFile(unit)
	os.WriteFile(unit, []byte(strings.Replace(string(b), "--workers 8", "--workers 12", 1)), 0o644)
	role := filepath.Join(fleet, "roles/ol-web.yaml")
	b, _ = os.ReadFile(role)
	s := string(b)
	i, j := strings.Index(s, "  - name: olsystem-previous"), strings.Index(s, "  - name: etc")
	if i < 0 || j < i {
		t.Fatalf("%s: no olsystem-previous overlay before etc", role)
	}
	os.WriteFile(role, []byte(s[:i]+s[j:]), 0o644)
}

// vmRoot is a root file system as a Debian VM has it for the example's
// ol-web, with images loop-mounted read-only at /1, for the commands a VM
// runs (with --root).
type vmRoot struct {
	t    *testing.T
	root string
}

// newVMRoot makes dir/root, with an empty /1 to mount a volume on; what
// is mounted there is unmounted when the test ends.
func newVMRoot(t *testing.T, dir string) *vmRoot {
	t.Helper()
	vm := &vmRoot{t: t, root: filepath.Join(dir, "root")}
	root := vm.root
	os.MkdirAll(filepath.Join(root, "1"), 0o755)
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc/systemd/system"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nopenlibrary:x:2000:2000::/:/usr/sbin/nologin\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nwww-data:x:33:\nopenlibrary:x:2000:\n"), 0o644)
	t.Cleanup(vm.umount)
	return vm
}

// mount loop-mounts img read-only at /1; the test is skipped if it
// cannot be.
func (vm *vmRoot) mount(img string) {
	vm.t.Helper()
	testenv.MountLoop(vm.t, img, filepath.Join(vm.root, "1"), "ro")
}

// umount unmounts /1; nothing mounted there is no error.
func (vm *vmRoot) umount() { exec.Command("umount", filepath.Join(vm.root, "1")).Run() }

// run runs olimage ARGS --root ROOT, wants exit status want and returns
// its output.
func (vm *vmRoot) run(want int, args ...string) string {
	vm.t.Helper()
	out, errOut, code := olimage(vm.t, append(args, "--root", vm.root)...)
	if code != want {
		vm.t.Fatalf("olimage %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out
}

// unitFile is ol-web.service on the root disk, a regular file activate
// wrote.
func (vm *vmRoot) unitFile() string {
	vm.t.Helper()
	p := filepath.Join(vm.root, "etc/systemd/system/ol-web.service")
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		vm.t.Fatalf("%s: %v, want a regular file", p, err)
	}
	b, _ := os.ReadFile(p)
	return string(b)
}
