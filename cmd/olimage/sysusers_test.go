package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSysusers prints the accounts of ol-db from the fleet and from the
// image built from it, the same but for the title; systemd-sysusers, where
// installed, creates them with the fleet's ids.
func TestSysusers(t *testing.T) {
	const accounts = "g openlibrary 2000\ng postgres 105\nu openlibrary 2000:2000 - - -\nu postgres 105:105 - - -\n"
	out, errOut, code := olimage(t, "-f", exampleFleet, "sysusers", "ol-db")
	if code != exitOK || !strings.HasPrefix(out, "# Accounts the files of role ol-db (fleet openlibrary 2024.01) use, with the fleet's ids.\n") || !strings.HasSuffix(out, "\n"+accounts) {
		t.Fatalf("sysusers ol-db: exit %d\n%s%s", code, out, errOut)
	}

	dir := t.TempDir()
	img := buildRole(t, exampleFleet, "ol-db")
	// From the image alone: no fleet to read.
	out, errOut, code = olimage(t, "-f", filepath.Join(dir, "nofleet"), "sysusers", img)
	if code != exitOK || !strings.HasPrefix(out, "# Accounts the files of image ") || !strings.HasSuffix(out, "\n"+accounts) {
		t.Fatalf("sysusers IMAGE: exit %d\n%s%s", code, out, errOut)
	}

	_, errOut, code = olimage(t, "-f", exampleFleet, "sysusers", filepath.Join(dir, "missing.img"))
	if code != exitError || !strings.Contains(errOut, "olimage: error: stat "+filepath.Join(dir, "missing.img")+": no such file or directory") {
		t.Errorf("sysusers of a missing image: exit %d\n%s", code, errOut)
	}
	_, errOut, code = olimage(t, "-f", exampleFleet, "sysusers", "ol-nope")
	if code != exitError || !strings.Contains(errOut, "ol-nope") {
		t.Errorf("sysusers of no role: exit %d\n%s", code, errOut)
	}

	tool, err := exec.LookPath("systemd-sysusers")
	if err != nil {
		// Not in CI's package list: systemd is not cheap to install there.
		t.Logf("systemd-sysusers is not installed: the file is not checked with it")
		return
	}
	conf := filepath.Join(dir, "olimage-ol-db.conf")
	os.WriteFile(conf, []byte(out), 0o644)
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if b, err := exec.Command(tool, "--root="+root, conf).CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, b)
	}
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	group, _ := os.ReadFile(filepath.Join(root, "etc/group"))
	for _, want := range []string{"openlibrary:x:2000:2000:", "postgres:x:105:105:"} {
		if !strings.Contains(string(passwd), "\n"+want) && !strings.HasPrefix(string(passwd), want) {
			t.Errorf("etc/passwd lacks %q:\n%s", want, passwd)
		}
	}
	for _, want := range []string{"openlibrary:x:2000:", "postgres:x:105:"} {
		if !strings.Contains(string(group), want) {
			t.Errorf("etc/group lacks %q:\n%s", want, group)
		}
	}
}
