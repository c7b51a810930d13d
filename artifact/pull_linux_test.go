package artifact

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/internetarchive/olimage/internal/registrytest"
	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
)

// A pull to a block device that held other bytes: the device reads back
// as the image, though only the non-zero blocks were written.
func TestPullDevice(t *testing.T) {
	testenv.RequireRoot(t, "writing to a loop device")
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := context.Background()
	img, ref := pushImage(t, reg.Host)
	side := readSidecar(t, img)
	backing := filepath.Join(t.TempDir(), "disk")
	junk := bytes.Repeat([]byte{0xaa}, int(side.Image.Size)+1<<20)
	if err := os.WriteFile(backing, junk, 0o644); err != nil {
		t.Fatal(err)
	}
	dev := testenv.Losetup(t, backing)
	res, err := local.Pull(ctx, ref, dev, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Device || res.Written >= side.Image.Size/2 {
		t.Errorf("device %v, wrote %d of %d bytes: want a device pull writing only non-zero blocks", res.Device, res.Written, side.Image.Size)
	}
	d, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, want := testfs.SHA256(t, io.LimitReader(d, side.Image.Size)), volumeSHA256(t, img); got != want {
		t.Fatalf("device reads sha256 %s, want %s", got, want)
	}
	if _, err := os.Stat(dev + ".manifest.json"); err == nil {
		t.Errorf("a device pull wrote %s.manifest.json", dev)
	}
}

// A pull onto a file system too small for the image fails naming the
// reference and the target, and leaves nothing behind.
func TestPullFullDisk(t *testing.T) {
	dir := testenv.MountTmpfs(t, "2m")
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := context.Background()
	_, ref := pushImage(t, reg.Host)
	target := filepath.Join(dir, "web.img")
	_, err := local.Pull(ctx, ref, target, PullOptions{})
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), target) {
		t.Fatalf("got %v, want ENOSPC naming %s and %s", err, ref, target)
	}
	onlyFiles(t, dir)
}
