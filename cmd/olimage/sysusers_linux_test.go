package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
)

// TestSysusersActivate: on a root without the fleet's accounts, activate
// of a mounted ol-db image refuses, naming each; the accounts sysusers
// prints for the image, created by systemd-sysusers (or, where it is not
// installed, written as it would), let the same activation through.
func TestSysusersActivate(t *testing.T) {
	testenv.RequireRoot(t, "a loop mount")
	img := buildRole(t, exampleFleet, "ol-db")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "1"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\npostgres:x:104:104::/var/lib/postgresql:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\npostgres:x:104:\n"), 0o644)
	testenv.MountLoop(t, img, filepath.Join(root, "1"), "ro")

	_, errOut, code := olimage(t, "activate", "--root", root, "--dry-run")
	for _, want := range []string{
		"olimage: error: user openlibrary: not in " + root + "/etc/passwd; the image's files use uid 2000: accounts differ\n",
		"olimage: error: user postgres: uid 104 in " + root + "/etc/passwd; the image's files use uid 105: accounts differ\n",
		"olimage: error: group openlibrary: not in " + root + "/etc/group; the image's files use gid 2000: accounts differ\n",
		"olimage: error: group postgres: gid 104 in " + root + "/etc/group; the image's files use gid 105: accounts differ\n",
		"olimage: hint: create the accounts with the fleet's ids first",
	} {
		if code != exitError || !strings.Contains(errOut, want) {
			t.Errorf("activate with the distro's postgres: exit %d, want %d and %q in\n%s", code, exitError, want, errOut)
		}
	}
	if _, errOut, code := olimage(t, "activate", "--root", root, "--dry-run", "--force-accounts"); code != exitOK {
		t.Errorf("activate --force-accounts: exit %d\n%s", code, errOut)
	}

	// The accounts as a fresh VM gets them, before the packages run.
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\n"), 0o644)
	conf, errOut, code := olimage(t, "sysusers", img)
	if code != exitOK {
		t.Fatalf("sysusers: exit %d\n%s", code, errOut)
	}
	if tool, err := exec.LookPath("systemd-sysusers"); err == nil {
		p := filepath.Join(dir, "olimage-ol-db.conf")
		os.WriteFile(p, []byte(conf), 0o644)
		if out, err := exec.Command(tool, "--root="+root, p).CombinedOutput(); err != nil {
			t.Fatalf("systemd-sysusers: %v\n%s", err, out)
		}
	} else {
		// Not in CI's package list: the lines it would write.
		t.Logf("systemd-sysusers is not installed: writing its accounts by hand")
		pw, _ := os.OpenFile(filepath.Join(root, "etc/passwd"), os.O_APPEND|os.O_WRONLY, 0)
		gr, _ := os.OpenFile(filepath.Join(root, "etc/group"), os.O_APPEND|os.O_WRONLY, 0)
		for _, l := range strings.Split(conf, "\n") {
			f := strings.Fields(l)
			switch {
			case len(f) >= 3 && f[0] == "g":
				gr.WriteString(f[1] + ":x:" + f[2] + ":\n")
			case len(f) >= 3 && f[0] == "u":
				uid, gid, _ := strings.Cut(f[2], ":")
				pw.WriteString(f[1] + ":x:" + uid + ":" + gid + "::/:/usr/sbin/nologin\n")
			}
		}
		pw.Close()
		gr.Close()
	}
	if out, errOut, code := olimage(t, "activate", "--root", root, "--dry-run"); code != exitOK {
		t.Errorf("activate with the accounts sysusers printed: exit %d\n%s%s", code, out, errOut)
	}
}
