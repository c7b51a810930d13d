//go:build linux

// Package e2e proves olimage on booted VMs under qemu. It holds only tests:
//
//   - TestVM boots Debian's cloud kernel with a busybox initramfs holding
//     olimage, and there mounts the example ol-web image as /1 with the
//     line `olimage fstab` prints, activates it, checks the links, and
//     deactivates it.
//   - TestSystemdVM boots a Debian systemd machine (its root built with
//     mmdebstrap and cached) and runs README's "On a VM" through seven cold
//     boots: provisioning, serving from /1, a reboot, the next release, a
//     rollback with a switch and a deactivate, serving from /1 opened
//     through dm-verity, and a flipped byte that dm-verity refuses.
//
// Run them with OLIMAGE_E2E=1 go test ./e2e (make e2e). They need
// qemu-system-x86_64, a /boot/vmlinuz-*-cloud-amd64 kernel with its
// modules, a static busybox, and for the systemd VM mmdebstrap,
// debian-archive-keyring, qemu-img and root; they skip without them, or
// fail when OLIMAGE_TEST_DISALLOW_SKIP is set. $OLIMAGE_E2E_CACHE holds the
// built root (default ~/.cache/olimage-e2e), $OLIMAGE_E2E_MIRROR is the
// Debian mirror mmdebstrap uses, $OLIMAGE_E2E_ACCEL=kvm|tcg skips probing
// KVM, and $OLIMAGE_E2E_LOGS names a directory to keep each boot's console.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/internetarchive/olimage/internal/testenv"
)

// vmTimeout bounds the whole boot; software emulation boots in seconds.
const vmTimeout = 240 * time.Second

// modules are the kernel modules /dev/vda needs, in load order; ext4 is
// built into Debian's cloud kernel.
var modules = []string{"virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci", "virtio_blk"}

// distroNginx is /etc/nginx/nginx.conf on the VM before activation.
const distroNginx = "# distro nginx.conf\n"

// initScript runs as PID 1 in the VM and prints OLIMAGE-E2E-PASS or
// OLIMAGE-E2E-FAIL: REASON.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
fail() { echo "OLIMAGE-E2E-FAIL: $*"; poweroff -f; sleep 10; }
step() { echo "OLIMAGE-E2E-STEP: $*"; }
for pass in 1 2; do
	for m in ` + "MODULES" + `; do insmod /lib/modules/$m.ko 2>/dev/null; done
done
i=0
while [ ! -b /dev/vda ]; do
	i=$((i+1)); [ $i -gt 100 ] && fail "no /dev/vda after loading the virtio modules"
	usleep 100000
done

step "olimage verify /dev/vda"
olimage verify /dev/vda || fail "olimage verify /dev/vda"

step "olimage fstab --uuid /dev/vda > /etc/fstab; mount /1"
olimage fstab --uuid /dev/vda > /etc/fstab || fail "olimage fstab --uuid /dev/vda"
cat /etc/fstab
mount /1 || fail "mount /1 with the fstab line above"
grep -q ' /1 ext4 ' /proc/mounts || fail "/1 is not an ext4 mount"

step "olimage sysusers /dev/vda: the image's accounts with the fleet's ids"
# busybox has no systemd-sysusers: the same lines, written by hand.
olimage sysusers /dev/vda > /tmp/sysusers || fail "olimage sysusers /dev/vda"
cat /tmp/sysusers
echo "root:x:0:0:root:/root:/bin/sh" > /etc/passwd
echo "root:x:0:" > /etc/group
while read kind name id rest; do
	case "$kind" in
	g) echo "$name:x:$id:" >> /etc/group ;;
	u) gid=${id#*:}; echo "$name:x:${id%%:*}:$gid::/:/bin/false" >> /etc/passwd ;;
	esac
done < /tmp/sysusers
grep -q '^openlibrary:x:2000:2000:' /etc/passwd || fail "olimage sysusers /dev/vda printed no openlibrary account"

step "olimage activate --dry-run"
olimage activate --dry-run || fail "olimage activate --dry-run"
[ "$(cat /etc/nginx/nginx.conf)" = "# distro nginx.conf" ] || fail "--dry-run changed /etc/nginx/nginx.conf"

step "olimage activate"
olimage activate || fail "olimage activate"
nginx=$(readlink -f /etc/nginx/nginx.conf)
echo "/etc/nginx/nginx.conf resolves to $nginx"
case "$nginx" in
/1/opt/openlibrary/deploys/olsystem/*/etc/nginx/nginx.conf) ;;
*) fail "/etc/nginx/nginx.conf resolves to $nginx, not into the active olsystem deploy" ;;
esac
[ -f "$nginx" ] || fail "$nginx is not a file"
grep -q 'distro' /etc/nginx/nginx.conf && fail "/etc/nginx/nginx.conf still reads the distro's content"
ol=$(readlink -f /opt/openlibrary/openlibrary)
echo "/opt/openlibrary/openlibrary resolves to $ol"
active=$(readlink /1/opt/openlibrary/openlibrary)
[ "$ol" = "/1/opt/openlibrary/$active" ] || fail "/opt/openlibrary/openlibrary resolves to $ol, want /1/opt/openlibrary/$active"
case "$active" in deploys/openlibrary/*) ;; *) fail "the active deploy is $active" ;; esac
[ -d "$ol" ] || fail "$ol is not a directory"

step "olimage status --volume /1"
olimage status --volume /1 || fail "olimage status --volume /1"

step "olimage activate (again)"
olimage activate > /tmp/again || fail "second olimage activate"
cat /tmp/again
grep -Eq '^  (move|link|mkdir|unlink|restore|rmdir) ' /tmp/again && fail "a second activate changed something"

step "olimage deactivate"
olimage deactivate || fail "olimage deactivate"
[ "$(cat /etc/nginx/nginx.conf)" = "# distro nginx.conf" ] || fail "/etc/nginx/nginx.conf is not the distro's after deactivate"
[ -L /etc/nginx/nginx.conf ] && fail "/etc/nginx/nginx.conf is still a symlink"
[ -e /opt ] && fail "/opt, made by activate, is still there"
[ -e /var/lib/olimage ] && fail "/var/lib/olimage is still there"
olimage status
[ $? = 1 ] || fail "olimage status after deactivate: want exit 1 (no image active)"
umount /1 || fail "umount /1"

echo OLIMAGE-E2E-PASS
poweroff -f
sleep 10
`

// needQemu skips the test unless OLIMAGE_E2E is set and qemu can boot an
// amd64 guest here; it returns qemu-system-x86_64's path.
func needQemu(t *testing.T) string {
	t.Helper()
	if os.Getenv("OLIMAGE_E2E") == "" {
		t.Skip("the VM test runs with OLIMAGE_E2E=1 (make e2e)")
	}
	if runtime.GOARCH != "amd64" || runtime.GOOS != "linux" {
		testenv.Skip(t, "the VM test runs on linux/amd64")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		testenv.Skip(t, "qemu-system-x86_64 not found: apt-get install qemu-system-x86")
	}
	return qemu
}

func TestVM(t *testing.T) {
	qemu := needQemu(t)
	kernel, modDir := findKernel(t)
	busybox := findBusybox(t)

	dir := t.TempDir()
	olimage := buildOlimage(t, dir)
	img := buildRole(t, olimage, "../examples/openlibrary", "ol-web", dir)

	var files []cpioFile
	add := func(name string, mode uint32, data []byte) {
		files = append(files, cpioFile{name: name, mode: mode, data: data})
	}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "1", "etc", "etc/nginx", "lib", "lib/modules", "var", "var/lib"} {
		add(d, 0o040755, nil)
	}
	add("init", 0o100755, []byte(strings.Replace(initScript, "MODULES", strings.Join(modules, " "), 1)))
	add("bin/busybox", 0o100755, readFile(t, busybox))
	add("bin/olimage", 0o100755, readFile(t, olimage))
	add("etc/nginx/nginx.conf", 0o100644, []byte(distroNginx))
	add("etc/hostname", 0o100644, []byte("olimage-e2e\n"))
	for _, m := range modules {
		add("lib/modules/"+m+".ko", 0o100644, readModule(t, modDir, m))
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := os.WriteFile(initrd, writeCpio(files), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), vmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu,
		"-nographic", "-m", "512", "-no-reboot", "-snapshot", "-nic", "none",
		"-kernel", kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet",
		"-drive", "file="+img+",format=raw,if=virtio,readonly=off",
	)
	cmd.WaitDelay = 5 * time.Second
	var console bytes.Buffer
	cmd.Stdout, cmd.Stderr = &console, &console
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	out := console.String()
	t.Logf("VM ran %.1fs (kernel %s)", elapsed.Seconds(), filepath.Base(kernel))
	fail := regexp.MustCompile(`OLIMAGE-E2E-FAIL: [^\r\n]*`).FindString(out)
	switch {
	case ctx.Err() != nil:
		t.Fatalf("the VM did not finish within %s; console:\n%s", vmTimeout, out)
	case fail != "":
		t.Fatalf("%s\nconsole:\n%s", fail, out)
	case !strings.Contains(out, "OLIMAGE-E2E-PASS"):
		t.Fatalf("the VM stopped without a result (qemu: %v); console:\n%s", err, out)
	case err != nil:
		t.Fatalf("qemu: %v; console:\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("console:\n%s", out)
	}
}

// findKernel returns Debian's newest cloud kernel and its modules' directory.
func findKernel(t *testing.T) (kernel, modDir string) {
	t.Helper()
	ks, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64")
	sort.Strings(ks)
	for i := len(ks) - 1; i >= 0; i-- {
		ver := strings.TrimPrefix(filepath.Base(ks[i]), "vmlinuz-")
		d := filepath.Join("/lib/modules", ver, "kernel")
		if _, err := os.Stat(d); err != nil {
			continue
		}
		if f, err := os.Open(ks[i]); err != nil {
			testenv.Skipf(t, "%s: %v (the VM test reads the kernel; run it as root)", ks[i], err)
		} else {
			f.Close()
		}
		return ks[i], d
	}
	testenv.Skip(t, "no /boot/vmlinuz-*-cloud-amd64 with modules: apt-get install linux-image-cloud-amd64")
	return "", ""
}

// findBusybox returns a statically linked busybox.
func findBusybox(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// A dynamic executable names its interpreter in a PT_INTERP segment.
		if bytes.Contains(b[:min(len(b), 4096)], []byte("/lib64/ld-linux")) {
			continue
		}
		return p
	}
	testenv.Skip(t, "no static busybox: apt-get install busybox-static")
	return ""
}

// readModule reads module m from the kernel's tree, decompressing a
// .ko.xz (busybox insmod reads plain .ko files).
func readModule(t *testing.T, modDir, m string) []byte {
	t.Helper()
	var found string
	filepath.WalkDir(modDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && (d.Name() == m+".ko" || d.Name() == m+".ko.xz") {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	if found == "" {
		t.Fatalf("module %s not found under %s", m, modDir)
	}
	if strings.HasSuffix(found, ".xz") {
		out, err := exec.Command("xz", "-dc", found).Output()
		if err != nil {
			t.Fatalf("xz -dc %s: %v", found, err)
		}
		return out
	}
	return readFile(t, found)
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type cpioFile struct {
	name string
	mode uint32 // with the file type bits
	data []byte
}

// writeCpio writes an initramfs: a cpio archive in the "newc" format the
// kernel unpacks, uncompressed.
func writeCpio(files []cpioFile) []byte {
	var b bytes.Buffer
	pad := func() {
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	write := func(ino int, f cpioFile) {
		nlink := 1
		if f.mode&0o170000 == 0o040000 {
			nlink = 2
		}
		fmt.Fprintf(&b, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			ino, f.mode, 0, 0, nlink, 0, len(f.data), 0, 0, 0, 0, len(f.name)+1, 0)
		b.WriteString(f.name)
		b.WriteByte(0)
		pad()
		b.Write(f.data)
		pad()
	}
	for i, f := range files {
		write(i+1, f)
	}
	write(0, cpioFile{name: "TRAILER!!!"})
	return b.Bytes()
}
