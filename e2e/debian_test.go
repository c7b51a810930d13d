//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/internetarchive/olimage/internal/testenv"
)

// debianSuite and debianPackages make the systemd VM's root file system:
// Debian's minimal base plus what boots it (systemd, udev, the cloud kernel
// and its initramfs), e2fsprogs for fsck of /1, python3 for the role's
// stand-in web app and the test's HTTP requests, and cryptsetup-bin for
// veritysetup, which opens /1 through dm-verity.
const debianSuite = "bookworm"

var debianPackages = []string{
	"systemd", "systemd-sysv", "udev", "kmod", "e2fsprogs",
	"linux-image-cloud-amd64", "initramfs-tools", "python3", "cryptsetup-bin",
}

// debianRoot is a cached Debian root file system: a raw ext4 image and the
// kernel and initramfs installed in it.
type debianRoot struct {
	image, kernel, initrd string
}

// cacheDir is where built roots are kept between runs: $OLIMAGE_E2E_CACHE,
// else the user's cache directory.
func cacheDir(t *testing.T) string {
	if d := os.Getenv("OLIMAGE_E2E_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("no cache directory for the VM's root file system (set OLIMAGE_E2E_CACHE): %v", err)
	}
	return filepath.Join(d, "olimage-e2e")
}

// buildDebianRoot returns the cached root for the package list and the
// customize hook, building it with mmdebstrap first when missing. The cache
// is keyed by a hash of both, so a changed list or hook builds a new root.
// Boots write to a qcow2 overlay, never to the cached image.
func buildDebianRoot(t *testing.T) debianRoot {
	t.Helper()
	hook, err := filepath.Abs("testdata/debian-customize.sh")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	h.Write([]byte(debianSuite + "\n" + strings.Join(debianPackages, ",") + "\n" + os.Getenv("OLIMAGE_E2E_MIRROR") + "\n"))
	h.Write(readFile(t, hook))
	dir := filepath.Join(cacheDir(t), "debian-"+debianSuite+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	root := debianRoot{
		image:  filepath.Join(dir, "root.img"),
		kernel: filepath.Join(dir, "vmlinuz"),
		initrd: filepath.Join(dir, "initrd.img"),
	}
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		t.Logf("Debian root: cached in %s", dir)
		return root
	}
	for _, tool := range []string{"mmdebstrap", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skipf(t, "%s not found: apt-get install mmdebstrap debian-archive-keyring e2fsprogs", tool)
		}
	}
	if os.Getuid() != 0 {
		testenv.Skip(t, "building the VM's root file system with mmdebstrap needs root")
	}

	start := time.Now()
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(tmp, "tree")
	args := []string{"--mode=root", "--variant=minbase", "--include=" + strings.Join(debianPackages, ","),
		"--customize-hook=" + hook + ` "$1"`, debianSuite, tree}
	if m := os.Getenv("OLIMAGE_E2E_MIRROR"); m != "" {
		args = append(args, m)
	}
	run(t, "mmdebstrap", args...)
	kernels, _ := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	initrds, _ := filepath.Glob(filepath.Join(tree, "boot", "initrd.img-*"))
	if len(kernels) != 1 || len(initrds) != 1 {
		t.Fatalf("mmdebstrap's root holds kernels %q and initramfs %q, want one of each", kernels, initrds)
	}
	for src, dst := range map[string]string{kernels[0]: root.kernel, initrds[0]: root.initrd} {
		if err := os.WriteFile(filepath.Join(tmp, filepath.Base(dst)), readFile(t, src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Sparse: the root holds about 600 MiB; the rest is room for the boots.
	run(t, "mkfs.ext4", "-q", "-F", "-L", "e2eroot", "-d", tree, filepath.Join(tmp, "root.img"), "3G")
	if err := os.RemoveAll(tree); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("Debian root: built in %s (cold, mmdebstrap and mkfs.ext4), cached in %s", time.Since(start).Round(time.Second), dir)
	return root
}

// run runs a host command, failing the test with its output.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}
