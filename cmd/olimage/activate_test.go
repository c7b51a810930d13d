package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"

	"github.com/internetarchive/olimage/activate"
	"github.com/internetarchive/olimage/manifest"
)

// activationRoot makes a root with a distro /etc/nginx/nginx.conf and a
// volume at /1 whose plan links etc/nginx/nginx.conf and opt/openlibrary.
func activationRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"etc/nginx/nginx.conf":     "distro\n",
		"1/etc/nginx/nginx.conf":   "ol\n",
		"1/opt/openlibrary/README": "ol\n",
		"var/lib/dpkg/status":      "dpkg\n",
		"1/" + manifest.Path:       "",
	}
	testfs.WriteFiles(t, root, files)
	m := manifest.Manifest{
		Schema: manifest.ImageSchema, Role: "ol-web", UUID: "5070136c-bd8e-5cda-932f-d88216814664", TreeDigest: strings.Repeat("a", 64),
		Activation: &manifest.Activation{Mount: "/1", Links: []manifest.Link{
			{Path: "etc/nginx/nginx.conf", Target: "etc/nginx/nginx.conf"},
			{Path: "opt/openlibrary", Target: "opt/openlibrary"},
		}},
		Entries: []manifest.Entry{
			// As a build records them: activate checks them against the volume.
			{Path: "etc/nginx/nginx.conf", Type: "file", Mode: "0644", UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()),
				Size: 3, SHA256: "81cd92a2cf45e3a2470ca3a125e637b1dc3fd8d62ed54ecd1a4687e71addca08"},
			{Path: "opt/openlibrary", Type: "dir", Mode: "0755", UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())},
		},
	}
	// Modes as the manifest says, whatever the umask.
	os.Chmod(filepath.Join(root, "1/etc/nginx/nginx.conf"), 0o644)
	os.Chmod(filepath.Join(root, "1/opt/openlibrary"), 0o755)
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(root, "1", manifest.Path), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// listing is every path under root with its type, link text or content.
func listing(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == filepath.Dir(activate.LockFile) {
			return filepath.SkipDir // the lock stays, where a boot clears it
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			b.WriteString(rel + " -> " + l + "\n")
		case fi.Mode().IsRegular():
			c, _ := os.ReadFile(p)
			b.WriteString(rel + ": " + string(c) + "\n")
		default:
			b.WriteString(rel + "/\n")
		}
		return nil
	})
	return b.String()
}

func TestActivateCommands(t *testing.T) {
	root := activationRoot(t)
	before := listing(t, root)

	_, _, code := olimage(t, "status", "--root", root)
	if code != exitFindings {
		t.Errorf("status before activate: exit %d, want %d", code, exitFindings)
	}
	out, errOut, code := olimage(t, "activate", "--root", root, "--dry-run")
	if code != exitOK || !strings.Contains(out, "move   /etc/nginx/nginx.conf") || !strings.Contains(out, "link   /opt/openlibrary ") {
		t.Errorf("activate --dry-run: exit %d\n%s%s", code, out, errOut)
	}
	if got := listing(t, root); got != before {
		t.Errorf("activate --dry-run changed the root:\n%s", got)
	}

	out, errOut, code = olimage(t, "activate", "--root", root, "--json")
	var rep activate.Report
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || rep.Schema != activate.ReportSchema || len(rep.Changes) != 4 {
		t.Fatalf("activate --json: exit %d\n%s%s", code, out, errOut)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/nginx/nginx.conf")); l != "/1/etc/nginx/nginx.conf" {
		t.Errorf("etc/nginx/nginx.conf links to %q", l)
	}
	out, _, code = olimage(t, "status", "--root", root, "--volume", "/1")
	if code != exitOK || !strings.Contains(out, "ok: 2 links in place") {
		t.Errorf("status after activate: exit %d\n%s", code, out)
	}
	out, _, code = olimage(t, "activate", "--root", root)
	if code != exitOK || !strings.Contains(out, "2 kept\n") {
		t.Errorf("activate again: exit %d\n%s", code, out)
	}

	os.Remove(filepath.Join(root, "opt/openlibrary"))
	out, _, code = olimage(t, "status", "--root", root, "--json")
	var st activate.Status
	if code != exitFindings || json.Unmarshal([]byte(out), &st) != nil || st.Schema != activate.StatusSchema || st.Links[1].State != activate.LinkMissing {
		t.Errorf("status with a link missing: exit %d\n%s", code, out)
	}

	out, errOut, code = olimage(t, "deactivate", "--root", root)
	if code != exitOK {
		t.Fatalf("deactivate: exit %d\n%s%s", code, out, errOut)
	}
	if got := listing(t, root); got != before {
		t.Errorf("after deactivate (-before +after):\n%s\n%s", before, got)
	}
}

func TestActivateRefused(t *testing.T) {
	root := activationRoot(t)
	os.RemoveAll(filepath.Join(root, "1/opt/openlibrary"))
	_, errOut, code := olimage(t, "activate", "--root", root)
	if code != exitError || !strings.Contains(errOut, "olimage: error: ") || !strings.Contains(errOut, "--force activates it anyway") {
		t.Errorf("activate of a volume missing a target: exit %d\n%s", code, errOut)
	}
	_, errOut, code = olimage(t, "activate", "--root", root, "--volume", "1")
	if code != exitError || !strings.Contains(errOut, `volume "1": want the absolute path`) {
		t.Errorf("activate --volume 1: exit %d\n%s", code, errOut)
	}
}

func TestFstab(t *testing.T) {
	mkfs := testenv.Tool(t, "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "v.img")
	if out, err := exec.Command(mkfs, "-q", "-F", "-U", "0e5d2c4b-1111-4222-8333-444455556666", "-L", "ol web", img, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fstab", img}, `LABEL=ol\040web /1 ext4 ro,nodev 0 2` + "\n"},
		{[]string{"fstab", img, "--uuid", "--mount", "/srv/data"}, "UUID=0e5d2c4b-1111-4222-8333-444455556666 /srv/data ext4 ro,nodev 0 2\n"},
		{[]string{"mount-unit", img}, "# /etc/systemd/system/1.mount\n"},
		{[]string{"mount-unit", img, "--mount", "/srv/ol-data"}, `# /etc/systemd/system/srv-ol\x2ddata.mount` + "\n"},
		{[]string{"mount-unit", img}, `What=/dev/disk/by-label/ol\x20web` + "\n"},
		{[]string{"mount-unit", img}, "Options=ro,nodev\n"},
		{[]string{"mount-unit", img, "--uuid"}, "What=/dev/disk/by-uuid/0e5d2c4b-1111-4222-8333-444455556666\n"},
		{[]string{"activate-unit", "--exec", "/usr/local/bin/olimage"}, "Requires=1.mount\n"},
	} {
		out, errOut, code := olimage(t, tc.args...)
		if code != exitOK || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d, got\n%s%s\nwant it to contain %q", tc.args, code, out, errOut, tc.want)
		}
	}
	_, errOut, code := olimage(t, "fstab", filepath.Join(t.TempDir(), "missing.img"))
	if code != exitError {
		t.Errorf("fstab of a missing file: exit %d\n%s", code, errOut)
	}

	// --write makes the line the one /1 entry, however often it runs.
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/fstab"), []byte("UUID=r / ext4 defaults 0 1\nUUID=old /1 ext4 defaults,nofail 0 2\n"), 0o644)
	for _, want := range []string{"replaced", "unchanged"} {
		out, errOut, code := olimage(t, "fstab", img, "--write", "--root", root)
		if code != exitOK || !strings.HasPrefix(out, "etc/fstab: "+want+" LABEL=") {
			t.Errorf("fstab --write: exit %d, got %q%s, want %s", code, out, errOut, want)
		}
	}
	b, _ := os.ReadFile(filepath.Join(root, "etc/fstab"))
	if want := "UUID=r / ext4 defaults 0 1\nLABEL=ol\\040web /1 ext4 ro,nodev 0 2\n"; string(b) != want {
		t.Errorf("etc/fstab: got %q, want %q", b, want)
	}

	// A file system without a label is mounted by UUID, and says so.
	nolabel := filepath.Join(t.TempDir(), "n.img")
	if out, err := exec.Command(mkfs, "-q", "-F", nolabel, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	_, errOut, code = olimage(t, "fstab", nolabel)
	if code != exitError || !strings.Contains(errOut, "has no label") || !strings.Contains(errOut, "hint: add --uuid") {
		t.Errorf("fstab of an unlabelled file system: exit %d\n%s", code, errOut)
	}
}

func TestActivateUnitWrite(t *testing.T) {
	root := t.TempDir()
	for _, want := range []string{"wrote /etc/systemd/system/olimage-activate.service\nwrote /etc/systemd/system/multi-user.target.wants/olimage-activate.service\n", "olimage-activate.service: unchanged\n"} {
		out, errOut, code := olimage(t, "activate-unit", "--write", "--root", root, "--exec", "/usr/local/bin/olimage")
		if code != exitOK || out != want {
			t.Errorf("activate-unit --write: exit %d, got %q%s, want %q", code, out, errOut, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/olimage-activate.service")); err != nil || l != "/etc/systemd/system/olimage-activate.service" {
		t.Errorf("wants link: %q, %v", l, err)
	}
}

// TestStatusInterrupted: status while an interrupted run is pending says
// so and exits 1, as for any finding.
func TestStatusInterrupted(t *testing.T) {
	root := activationRoot(t)
	mustRun(t, "activate", "--root", root)
	// As a run killed between journaling the last link and making it.
	testfs.EditJSON(t, filepath.Join(root, activate.JournalFile), func(j *activate.Journal) {
		j.Running, j.Actions[len(j.Actions)-1].State = "activate", activate.StatePending
		os.Remove(filepath.Join(root, j.Actions[len(j.Actions)-1].Path))
	})
	out, errOut, code := olimage(t, "status", "--root", root)
	if code != exitFindings || !strings.Contains(out, "an interrupted activate left 1 step(s) unfinished") {
		t.Errorf("status: exit %d, want %d and the run named\n%s%s", code, exitFindings, out, errOut)
	}
}

// TestOperatorSafety: status checks the volume at /1 by default and fails
// with a line saying why when nothing or another image is mounted there;
// deactivate says when there is nothing to undo, and a mistyped root is
// an error.
func TestOperatorSafety(t *testing.T) {
	root := activationRoot(t)
	out, errOut, code := olimage(t, "deactivate", "--root", root)
	if code != exitOK || !strings.Contains(out, "deactivate: nothing to undo: no image is active on "+root+" (no journal at ") {
		t.Errorf("deactivate with no journal: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = olimage(t, "deactivate", "--root", root+"/typo")
	if code != exitError || !strings.Contains(errOut, "olimage: error: root "+root+"/typo: no such file or directory") {
		t.Errorf("deactivate --root typo: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Lstat(root + "/typo"); err == nil {
		t.Errorf("deactivate --root typo made it")
	}
	out, errOut, code = olimage(t, "activate", "--root", root, "--volume", "/2")
	if code != exitError || !strings.Contains(errOut, "olimage: error: volume /2: nothing olimage built is mounted here: open "+root+"/2: no such file or directory\nolimage: hint: mount the volume first") {
		t.Errorf("activate --volume /2 with nothing there: exit %d\n%s%s", code, out, errOut)
	}
	mustRun(t, "activate", "--root", root)
	mustRun(t, "status", "--root", root)

	// Another image at /1.
	mp := filepath.Join(root, "1", manifest.Path)
	b, _ := os.ReadFile(mp)
	os.WriteFile(mp, bytes.Replace(b, []byte("5070136c-"), []byte("6070136c-"), 1), 0o644)
	out, _, code = olimage(t, "status", "--root", root)
	if code != exitFindings || !strings.Contains(out, "the active image is ol-web 5070136c-bd8e-5cda-932f-d88216814664 at /1, the volume at /1 holds ol-web 6070136c-") {
		t.Errorf("status with another image at /1: exit %d\n%s", code, out)
	}
	os.WriteFile(mp, b, 0o644)

	// Nothing at /1: the volume is not mounted.
	os.Rename(filepath.Join(root, "1"), filepath.Join(root, "1.off"))
	os.Mkdir(filepath.Join(root, "1"), 0o755)
	out, _, code = olimage(t, "status", "--root", root)
	if code != exitFindings || !strings.Contains(out, "nothing olimage built is mounted at /1: there is no /1/.olimage/manifest.json\n") || strings.Contains(out, "ok:") {
		t.Errorf("status with nothing at /1: exit %d\n%s", code, out)
	}
	if out, _, code := olimage(t, "status", "--root", root, "--volume", ""); code != exitOK {
		t.Errorf("status --volume '': exit %d\n%s", code, out)
	}
}

// TestRecoverCommand: with the journal corrupt, activate points at
// recover, whose dry run lists the steps; recover puts the originals back.
func TestRecoverCommand(t *testing.T) {
	root := activationRoot(t)
	before := listing(t, root)
	mustRun(t, "activate", "--root", root)
	out, errOut, code := olimage(t, "recover", "--root", root)
	if code != exitError || !strings.Contains(errOut, "the journal is intact") || !strings.Contains(errOut, "olimage: hint: 'olimage deactivate'") {
		t.Errorf("recover with the journal intact: exit %d\n%s%s", code, out, errOut)
	}
	os.WriteFile(filepath.Join(root, activate.JournalFile), []byte("{"), 0o644)
	for _, cmd := range []string{"activate", "deactivate", "status"} {
		out, errOut, code := olimage(t, cmd, "--root", root)
		if code != exitError || !strings.Contains(errOut, "journal.json: unexpected end of JSON input") || !strings.Contains(errOut, "olimage: hint: 'olimage recover --dry-run'") {
			t.Errorf("%s with a corrupt journal: exit %d\n%s%s", cmd, code, out, errOut)
		}
	}
	mid := listing(t, root)
	out, errOut, code = olimage(t, "recover", "--root", root, "--dry-run")
	want := "recover (dry run) " + root + " from the backups in /var/lib/olimage/backup\n" +
		"  unlink   /etc/nginx/nginx.conf  /1/etc/nginx/nginx.conf\n" +
		"  restore  /etc/nginx/nginx.conf  /var/lib/olimage/backup/5070136c-bd8e-5cda-932f-d88216814664/etc/nginx/nginx.conf\n" +
		"  unlink   /opt/openlibrary       /1/opt/openlibrary\n" +
		"2 unlinked, 1 restored\n"
	if code != exitOK || out != want {
		t.Errorf("recover --dry-run: exit %d\n%s%s\nwant\n%s", code, out, errOut, want)
	}
	if got := listing(t, root); got != mid {
		t.Errorf("recover --dry-run changed the root:\n%s", got)
	}
	mustRun(t, "recover", "--root", root)
	// What activate made stays: the /opt it created, and the journal kept
	// aside.
	want = strings.Replace(before, "\nvar/\n", "\nopt/\nvar/\n", 1)
	want = strings.Replace(want, "var/lib/dpkg/status: dpkg\n\n", "var/lib/dpkg/status: dpkg\n\nvar/lib/olimage/\nvar/lib/olimage/journal.json.broken: {\n", 1)
	if got := listing(t, root); got != want {
		t.Errorf("after recover:\n%s\nwant\n%s", got, want)
	}
}

// TestActivateKilled kills activate at each rename it makes (strace fault
// injection: the journal's replacement and the moves aside). status then
// exits 1 saying what is wrong, never 2; the next run, a deactivate,
// removes the journal.json.tmp the kill left and restores the root
// exactly; activate then works.
func TestActivateKilled(t *testing.T) {
	strace := testenv.Tool(t, "strace")
	bin := binary(t)
	leftTmp := 0
	for n := 1; ; n++ {
		root := activationRoot(t)
		before := listing(t, root)
		trace := filepath.Join(t.TempDir(), "trace")
		calls := "?rename,renameat,renameat2"
		cmd := exec.Command(strace, "-f", "-o", trace, "-e", "signal=none", "-e", "trace="+calls,
			"-e", fmt.Sprintf("inject=%s:signal=KILL:when=%d", calls, n),
			bin, "activate", "--root", root)
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			if err == nil && n > 2 {
				break // no rename left to kill at
			}
			tr, _ := os.ReadFile(trace)
			t.Fatalf("activate was not killed at rename %d: %v\n%s", n, err, tr)
		}
		tmp := filepath.Join(root, activate.JournalFile+".tmp")
		_, tmpErr := os.Lstat(tmp)
		if tmpErr == nil {
			leftTmp++
		}
		out, errOut, code := olimage(t, "status", "--root", root)
		if code != exitFindings {
			t.Errorf("killed at rename %d: status: exit %d, want %d\n%s%s", n, code, exitFindings, out, errOut)
		}
		if out, errOut, code := olimage(t, "deactivate", "--root", root); code != exitOK {
			t.Fatalf("killed at rename %d: the next deactivate: exit %d\n%s%s", n, code, out, errOut)
		}
		if _, err := os.Lstat(tmp); tmpErr == nil && err == nil {
			t.Errorf("killed at rename %d: %s is still there after the next run", n, tmp)
		}
		if got := listing(t, root); got != before {
			t.Errorf("killed at rename %d: after deactivate:\n%s\nwant\n%s", n, got, before)
		}
		if out, errOut, code := olimage(t, "activate", "--root", root); code != exitOK {
			t.Fatalf("killed at rename %d: activate: exit %d\n%s%s", n, code, out, errOut)
		}
		if out, _, code := olimage(t, "status", "--root", root); code != exitOK {
			t.Errorf("killed at rename %d: status after the next activate: exit %d\n%s", n, code, out)
		}
		if n > 20 {
			t.Fatal("no end to renames")
		}
	}
	if leftTmp == 0 {
		t.Errorf("no kill left %s.tmp: the test kills at no journal rename", activate.JournalFile)
	}
}
