package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
)

// TestVerifyMounted verifies an image while it is loop-mounted read-only
// and read-write, and after each unmount: the kernel's needs_recovery flag
// on a mounted file system is not a journal that needs recovery. A journal
// with a transaction logged and not replayed still is one.
func TestVerifyMounted(t *testing.T) {
	testenv.RequireRoot(t, "a loop mount")
	img := release(t, "a", nil)
	mnt := t.TempDir()
	for _, opts := range []string{"ro", "rw"} {
		if opts == "rw" {
			// A read-write mount writes to the file system (mount
			// count, journal), so the image is no longer the one its
			// sidecar names; from here on only the journal is checked.
			os.Remove(img + ".manifest.json")
		}
		testenv.MountLoop(t, img, mnt, opts)
		o, e, code := olimage(t, "verify", img)
		testenv.Umount(t, mnt)
		if code != 0 {
			t.Errorf("verify while mounted -o %s: exit %d\n%s%s", opts, code, o, e)
		}
		if o, e, code := olimage(t, "verify", img); code != 0 {
			t.Errorf("verify after mount -o %s: exit %d\n%s%s", opts, code, o, e)
		}
	}
	testenv.Fsck(t, img)

	// Log one block in the journal without replaying it, as a crash
	// between a commit and its checkpoint leaves it.
	debugfs := testenv.Tool(t, "debugfs")
	dir := t.TempDir()
	block := filepath.Join(dir, "block")
	cmds := filepath.Join(dir, "cmds")
	os.WriteFile(block, []byte(strings.Repeat("x", 4096)), 0o644)
	os.WriteFile(cmds, []byte("jo\njw -b 5000 "+block+"\njc\n"), 0o644)
	if out, err := exec.Command(debugfs, "-w", "-f", cmds, img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v\n%s", err, out)
	}
	o, e, code := olimage(t, "verify", img)
	if code != 1 || !strings.Contains(o, "superblock: journal needs recovery") {
		t.Errorf("verify of a journal holding a transaction: exit %d, want 1 and the journal reported\n%s%s", code, o, e)
	}
	if o, _, _ := olimage(t, "inspect", img); !strings.Contains(o, "journal needs recovery") {
		t.Errorf("inspect does not say the journal needs recovery:\n%s", o)
	}
}
