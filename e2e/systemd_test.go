//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/internal/registrytest"
	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/verify"
)

// The next release differs from the example fleet in what the stand-in
// serves (a line in olsystem's openlibrary.yml) and in one link it drops.
const (
	nextReleaseLine = "release_note: the next release"
	droppedLink     = "/etc/nginx/sites-enabled/openlibrary.conf"
	// tampered is the file of the image whose first byte the test flips
	// after serving through dm-verity; nothing at boot reads it but
	// activate's content check.
	tampered = "opt/openlibrary/README"
)

// TestSystemdVM walks the operator's path of README's "On a VM" on a
// Debian systemd machine under qemu, one cold boot per step, all on one
// root disk: provision (accounts, fstab, the activation unit); boot and
// serve release 1 from /1; cold reboot; attach release 2 (same label,
// changed content, a dropped link) and boot; attach release 1 again and
// boot; switch a deploy and back; deactivate, leaving the root as it was,
// and open the volume through dm-verity from then on; boot release 1
// built with its hash tree and signed, and serve from it; flip a byte of
// a file in that disk image and boot: reading the file fails, and verify
// and activate with CI's key refuse the volume.
// The VM's side of each step is testdata/vm/run.
func TestSystemdVM(t *testing.T) {
	qemu := needQemu(t)
	for _, tool := range []string{"qemu-img", "mkfs.ext4", "blkid", "debugfs", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skipf(t, "%s not found: apt-get install qemu-utils e2fsprogs util-linux openssh-client", tool)
		}
	}
	start := time.Now()
	root := buildDebianRoot(t)

	dir := t.TempDir()
	olimage := buildOlimage(t, dir)
	fleet2 := filepath.Join(dir, "fleet-next")
	nextRelease(t, "../examples/openlibrary", fleet2)
	built := []string{"",
		buildRole(t, olimage, "../examples/openlibrary", "ol-web", filepath.Join(dir, "release-1")),
		buildRole(t, olimage, fleet2, "ol-web", filepath.Join(dir, "release-2")),
	}
	// The VM gets each release the way operators do: CI pushes it to a
	// registry, and it is pulled onto the disk that is attached.
	reg := registrytest.Start(t, registrytest.Options{})
	images := []string{""}
	for n := 1; n < len(built); n++ {
		ref := fmt.Sprintf("%s/ol/ol-web:release-%d", reg.Host, n)
		run(t, olimage, "push", "--insecure", built[n], ref)
		pulled := filepath.Join(dir, fmt.Sprintf("pulled-%d.img", n))
		run(t, olimage, "pull", "--insecure", ref, "-o", pulled)
		images = append(images, pulled)
	}

	ctl := filepath.Join(dir, "control")
	if err := os.MkdirAll(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	// Release 3 is release 1 built with its dm-verity tree and signed by
	// CI's key; the VM gets the signed sidecar and the public key.
	verityImage := buildRole(t, olimage, "../examples/openlibrary", "ol-web", filepath.Join(dir, "release-3"), "--verity")
	key := filepath.Join(dir, "ci")
	run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ci", "-f", key)
	run(t, olimage, "sign", verityImage, "--key", key)
	images = append(images, verityImage)
	sidecar := verityImage + image.SidecarSuffix
	writeFile(t, filepath.Join(ctl, "ol-web.manifest.json"), readFile(t, sidecar), 0o644)
	writeFile(t, filepath.Join(ctl, "ol-web.manifest.json.sig"), readFile(t, sidecar+verify.SignatureSuffix), 0o644)
	writeFile(t, filepath.Join(ctl, "ci.pub"), readFile(t, key+".pub"), 0o644)
	writeFile(t, filepath.Join(ctl, "olimage"), readFile(t, olimage), 0o755)
	writeFile(t, filepath.Join(ctl, "run"), readFile(t, "testdata/vm/run"), 0o755)
	// The accounts the VM must end up with, as the build host prints them.
	sysusers, err := exec.Command(olimage, "-f", "../examples/openlibrary", "sysusers", "ol-web").CombinedOutput()
	if err != nil {
		t.Errorf("olimage -f examples/openlibrary sysusers ol-web: %v\n%s", err, sysusers)
	}
	writeFile(t, filepath.Join(ctl, "sysusers.conf"), sysusers, 0o644)
	for n, env := range map[int]string{
		1: fmt.Sprintf("SERVES='site: openlibrary.org'\nNOT_SERVES='%s'\nLINKED='/etc/nginx/nginx.conf %s'\nDROPPED=''\n", nextReleaseLine, droppedLink),
		2: fmt.Sprintf("SERVES='%s'\nNOT_SERVES=''\nLINKED='/etc/nginx/nginx.conf'\nDROPPED='%s'\n", nextReleaseLine, droppedLink),
		3: fmt.Sprintf("SERVES='site: openlibrary.org'\nNOT_SERVES='%s'\nLINKED='/etc/nginx/nginx.conf %s'\nDROPPED=''\nCHANGED='/1/%s'\n", nextReleaseLine, droppedLink, tampered),
	} {
		uuid := strings.TrimSpace(string(run(t, "blkid", "-o", "value", "-s", "UUID", images[n])))
		writeFile(t, filepath.Join(ctl, fmt.Sprintf("release-%d.env", n)), []byte("UUID="+uuid+"\n"+env), 0o644)
	}
	control := filepath.Join(dir, "control.img")
	run(t, "mkfs.ext4", "-q", "-F", "-L", "e2ectl", "-d", ctl, control, "256M")

	m := &machine{
		qemu:    qemu,
		accel:   accelerator(t, qemu, root.kernel),
		root:    root,
		overlay: filepath.Join(dir, "root.qcow2"),
		control: control,
	}
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", root.image, m.overlay)

	// Each boot builds on the ones before; one whose script did not run to
	// its end (a VM that hung or did not boot) stops the walk.
	for _, b := range []struct {
		name, stage string
		release     int
		before      func()
	}{
		{"provision", "provision", 1, nil},
		{"first boot", "serve", 1, nil},
		{"cold reboot", "serve", 1, nil},
		{"next release", "serve", 2, nil},
		{"rollback, switch, deactivate, dm-verity set up", "rollback", 1, nil},
		{"through dm-verity", "verity", 3, nil},
		{"a flipped byte", "tampered", 3, func() { flipByte(t, images[3], tampered) }},
	} {
		if b.before != nil {
			b.before()
		}
		if !m.boot(t, b.name, b.stage, b.release, images[b.release]) {
			break
		}
	}
	t.Logf("the systemd VM test ran %s", time.Since(start).Round(time.Second))
}

// nextRelease copies the fleet at src to dst as its next release: the
// stand-in serves an added line, and ol-web drops one /etc link.
func nextRelease(t *testing.T, src, dst string) {
	t.Helper()
	run(t, "cp", "-a", src, dst)
	cfg := filepath.Join(dst, "sources/olsystem/etc/openlibrary.yml")
	writeFile(t, cfg, append(readFile(t, cfg), []byte(nextReleaseLine+"\n")...), 0o644)
	role := filepath.Join(dst, "roles/ol-web.yaml")
	b := string(readFile(t, role))
	link := "      - path: " + strings.TrimPrefix(droppedLink, "/") + "\n"
	i := strings.Index(b, link)
	if i < 0 {
		t.Fatalf("%s: no %q to drop for the next release", role, link)
	}
	// The entry is its path line and the lines indented below it.
	end := i + len(link)
	for end < len(b) && strings.HasPrefix(b[end:], "        ") {
		end += strings.IndexByte(b[end:], '\n') + 1
	}
	writeFile(t, role, []byte(b[:i]+b[end:]), 0o644)
}

// buildOlimage builds olimage, static, into dir.
func buildOlimage(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "olimage")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/olimage")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// flipByte inverts the first byte of the file at path (in the image's
// file system) in the raw image, found with debugfs: a change no
// manifest or sidecar follows.
func flipByte(t *testing.T, image, path string) {
	t.Helper()
	out := strings.TrimSpace(string(run(t, "debugfs", "-R", "bmap /"+path+" 0", image)))
	block, err := strconv.ParseInt(out[strings.LastIndexByte(out, '\n')+1:], 10, 64)
	if err != nil || block == 0 {
		t.Fatalf("debugfs -R 'bmap /%s 0' %s: no data block in %q", path, image, out)
	}
	f, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The image's file systems have 4096-byte blocks.
	off := block * 4096
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("flipped the byte at %d (block %d, the first of /%s) in %s", off, block, path, filepath.Base(image))
}

// buildRole builds role's image of fleet into out, with the build options
// opts, and returns its path.
func buildRole(t *testing.T, olimage, fleet, role, out string, opts ...string) string {
	t.Helper()
	run(t, olimage, append([]string{"-f", fleet, "build", role, "-o", out}, opts...)...)
	imgs, _ := filepath.Glob(filepath.Join(out, role+"-*.img"))
	if len(imgs) != 1 {
		t.Fatalf("olimage -f %s build %s wrote %q, want one image", fleet, role, imgs)
	}
	return imgs[0]
}

func writeFile(t *testing.T, p string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
}
