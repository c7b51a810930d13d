//go:build linux

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/internetarchive/olimage/internal/registrytest"
	"github.com/internetarchive/olimage/internal/testenv"
)

// The next release differs from the example fleet in what the stand-in
// serves (a line in olsystem's openlibrary.yml) and in one link it drops.
const (
	nextReleaseLine = "release_note: the next release"
	droppedLink     = "/etc/nginx/sites-enabled/openlibrary.conf"
)

// TestSystemdVM walks the operator's path of README's "On a VM" on a
// Debian systemd machine under qemu, one cold boot per step, all on one
// root disk: provision (accounts, fstab, the activation unit); boot and
// serve release 1 from /1; cold reboot; attach release 2 (same label,
// changed content, a dropped link) and boot; attach release 1 again and
// boot; switch a deploy and back; deactivate, leaving the root as it was.
// The VM's side of each step is testdata/vm/run.
func TestSystemdVM(t *testing.T) {
	qemu := needQemu(t)
	for _, tool := range []string{"qemu-img", "mkfs.ext4", "blkid"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skipf(t, "%s not found: apt-get install qemu-utils e2fsprogs util-linux", tool)
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
	}{
		{"provision", "provision", 1},
		{"first boot", "serve", 1},
		{"cold reboot", "serve", 1},
		{"next release", "serve", 2},
		{"rollback, switch, deactivate", "rollback", 1},
	} {
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

// buildRole builds role's image of fleet into out and returns its path.
func buildRole(t *testing.T, olimage, fleet, role, out string) string {
	t.Helper()
	run(t, olimage, "-f", fleet, "build", role, "-o", out)
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
