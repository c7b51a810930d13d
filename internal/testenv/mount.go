package testenv

import (
	"bytes"
	"os/exec"
	"testing"
)

// MountLoop loop-mounts the ext4 image img at the directory dir with the
// mount options opts ("ro" or "rw") and unmounts it when the test ends,
// unless Umount did first. Without root, or where the mount fails (no
// loop devices), it skips t.
func MountLoop(t testing.TB, img, dir, opts string) {
	t.Helper()
	RequireRoot(t, "a loop mount")
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "loop,"+opts, img, dir).CombinedOutput(); err != nil {
		Skipf(t, "mount -o loop,%s %s: %v: %s", opts, img, err, bytes.TrimSpace(out))
	}
	// An error here means Umount was called already.
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
}

// Umount unmounts dir now, failing t if it cannot.
func Umount(t testing.TB, dir string) {
	t.Helper()
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v: %s", dir, err, bytes.TrimSpace(out))
	}
}

// Losetup attaches a loop device with losetup's options args (the backing
// file last), detaches it when the test ends and returns its path.
// Without root, or where losetup fails (no loop devices), it skips t.
func Losetup(t testing.TB, args ...string) string {
	t.Helper()
	RequireRoot(t, "losetup")
	out, err := exec.Command(Tool(t, "losetup"), append([]string{"--find", "--show"}, args...)...).CombinedOutput()
	if err != nil {
		Skipf(t, "losetup %v: %v: %s", args, err, bytes.TrimSpace(out))
	}
	dev := string(bytes.TrimSpace(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

// MountTmpfs mounts a tmpfs of size bytes (mount's size=, "64k", "1m") at
// a new directory, unmounted when the test ends, and returns the
// directory. Without root, or where the mount fails, it skips t.
func MountTmpfs(t testing.TB, size string) string {
	t.Helper()
	RequireRoot(t, "mounting a tmpfs")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		Skipf(t, "mount -t tmpfs: %v: %s", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}
