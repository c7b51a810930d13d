package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// deployRoot makes a root with a volume at /1 carrying two olsystem bins
// (aaa active), and a unit file from olsystem, enabled.
func deployRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	vol := filepath.Join(root, "1")
	testfs.WriteFiles(t, vol, map[string]string{
		"opt/openlibrary/deploys/olsystem/aaa/etc/systemd/system/ol-web.service": "[Service]\nExecStart=/bin/true aaa\n",
		"opt/openlibrary/deploys/olsystem/bbb/etc/systemd/system/ol-web.service": "[Service]\nExecStart=/bin/true bbb\n",
	})
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755) // as on any Debian root
	os.MkdirAll(filepath.Join(vol, "etc/systemd/system/multi-user.target.wants"), 0o755)
	os.Symlink("deploys/olsystem/aaa", filepath.Join(vol, "opt/openlibrary/olsystem"))
	os.Symlink("/opt/openlibrary/olsystem/etc/systemd/system/ol-web.service", filepath.Join(vol, "etc/systemd/system/ol-web.service"))
	os.Symlink("/etc/systemd/system/ol-web.service", filepath.Join(vol, "etc/systemd/system/multi-user.target.wants/ol-web.service"))
	m := manifest.Manifest{
		Schema: manifest.ImageSchema, Role: "ol-web", UUID: "6070136c-bd8e-5cda-932f-d88216814664", TreeDigest: strings.Repeat("b", 64),
		Activation: &manifest.Activation{Mount: "/1", Links: []manifest.Link{
			{Path: "etc/systemd/system/multi-user.target.wants/ol-web.service", Target: "etc/systemd/system/multi-user.target.wants/ol-web.service"},
			{Path: "etc/systemd/system/ol-web.service", Target: "etc/systemd/system/ol-web.service"},
			{Path: "opt/openlibrary", Target: "opt/openlibrary"},
		}},
	}
	filepath.Walk(vol, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == vol {
			return err
		}
		rel, _ := filepath.Rel(vol, p)
		st := fi.Sys().(*syscall.Stat_t)
		e := manifest.Entry{Path: rel, Mode: fmt.Sprintf("%04o", fi.Mode().Perm()), UID: st.Uid, GID: st.Gid}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			e.Type, e.Mode = "symlink", "0777"
			e.Target, _ = os.Readlink(p)
		case fi.IsDir():
			e.Type = "dir"
		default:
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			e.Type, e.Size, e.SHA256 = "file", int64(len(b)), hex.EncodeToString(sum[:])
		}
		m.Entries = append(m.Entries, e)
		return nil
	})
	os.MkdirAll(filepath.Join(vol, tree.OlimageDir), 0o755)
	b, _ := json.Marshal(m)
	os.WriteFile(filepath.Join(vol, manifest.Path), b, 0o644)
	return root
}

func TestSwitchCommand(t *testing.T) {
	root := deployRoot(t)
	before := listing(t, root)
	out, errOut, code := olimage(t, "switch", "olsystem", "bbb", "--root", root)
	if code != exitError || !strings.Contains(errOut, "not the active image") || !strings.Contains(errOut, "hint: run 'olimage activate' first") {
		t.Errorf("switch before activate: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code = olimage(t, "activate", "--root", root); code != exitOK {
		t.Fatalf("activate: exit %d\n%s%s", code, out, errOut)
	}
	unit := filepath.Join(root, "etc/systemd/system/ol-web.service")
	if b, _ := os.ReadFile(unit); !strings.HasSuffix(string(b), "\n[Service]\nExecStart=/bin/true aaa\n") {
		t.Errorf("unit file after activate: %q", b)
	}
	out, _, code = olimage(t, "status", "--root", root, "--volume", "/1")
	if code != exitOK || !strings.Contains(out, "deploy  olsystem") || !strings.Contains(out, "aaa (the image's; bins: aaa bbb)") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	out, errOut, code = olimage(t, "switch", "olsystem", "bbb", "--root", root)
	if code != exitOK || !regexp.MustCompile(`(?m)^  link +/opt/openlibrary/olsystem +/1/opt/openlibrary/deploys/olsystem/bbb$`).MatchString(out) {
		t.Errorf("switch: exit %d\n%s%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(unit); !strings.HasSuffix(string(b), "\n[Service]\nExecStart=/bin/true bbb\n") {
		t.Errorf("unit file after switch: %q", b)
	}
	out, _, code = olimage(t, "status", "--root", root, "--volume", "/1")
	if code != exitOK || !strings.Contains(out, "bbb (switched from aaa; bins: aaa bbb)") {
		t.Errorf("status after switch: exit %d\n%s", code, out)
	}
	_, errOut, code = olimage(t, "switch", "olsystem", "zzz", "--root", root)
	if code != exitError || !strings.Contains(errOut, "switch olsystem zzz: no such bin; the image carries aaa, bbb") {
		t.Errorf("switch to a missing bin: exit %d\n%s", code, errOut)
	}
	if out, errOut, code = olimage(t, "deactivate", "--root", root); code != exitOK {
		t.Fatalf("deactivate: exit %d\n%s%s", code, out, errOut)
	}
	if got := listing(t, root); got != before {
		t.Errorf("after deactivate (-want +got):\n%s", cmp.Diff(before, got))
	}
}
