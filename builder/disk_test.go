package builder

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
)

// A role built as raw, GPT disk and qcow2: the same volume in each
// (qemu-img compare, the partition's bytes), the same sidecar identity;
// the GPT read by sfdisk has one Linux file-system partition named for the
// role at 1 MiB, whose file system passes e2fsck through a loop device at
// its offset; the qcow2 passes qemu-img check.
func TestBuildDiskFormats(t *testing.T) {
	testenv.Tool(t, "qemu-img")
	testenv.Tool(t, "sfdisk")
	src := t.TempDir()
	testfs.WriteFiles(t, src, map[string]string{"opt/app/README": "olimage\n", "etc/app.conf": "x = 1\n"})
	f, r := loadRole(t, writeFleet(t, src), "r")
	dir := t.TempDir()
	build := func(name string, verity bool) *Result {
		t.Helper()
		res, err := Build(context.Background(), f, r, Options{Output: filepath.Join(dir, name), SHA256: true, Verity: verity})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, verity := range []bool{false, true} {
		t.Run("verity="+strconv.FormatBool(verity), func(t *testing.T) {
			raw := build("v.img", verity)
			disk := build("v.gpt.img", verity)
			q := build("v.qcow2", verity)
			for _, res := range []*Result{disk, q} {
				if res.SHA256 != raw.SHA256 || res.Verity.RootHash != raw.Verity.RootHash || res.Size != raw.Size {
					t.Errorf("%s: size %d sha256 %s root %s; raw: %d %s %s", res.Image, res.Size, res.SHA256, res.Verity.RootHash, raw.Size, raw.SHA256, raw.Verity.RootHash)
				}
			}
			// qcow2
			if out, err := exec.Command("qemu-img", "check", q.Image).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img check: %v\n%s", err, out)
			}
			if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw.Image, q.Image).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img compare: %v\n%s", err, out)
			}
			// Header, L1, L2, refcount table and block: 5 clusters.
			if fi, _ := os.Stat(q.Image); fi.Size() > (dataClusters(t, raw.Image)+5)<<16 {
				t.Errorf("qcow2 of %d bytes for %d non-zero 64 KiB clusters: zero clusters should be left out", fi.Size(), dataClusters(t, raw.Image))
			}
			// GPT
			out, err := exec.Command("sfdisk", "--json", disk.Image).Output()
			if err != nil {
				t.Fatalf("sfdisk --json: %v", err)
			}
			var pt struct {
				Table struct {
					Label      string `json:"label"`
					Partitions []struct {
						Start, Size int64
						Type, Name  string
					} `json:"partitions"`
				} `json:"partitiontable"`
			}
			if err := json.Unmarshal(out, &pt); err != nil {
				t.Fatal(err)
			}
			ps := pt.Table.Partitions
			if pt.Table.Label != "gpt" || len(ps) != 1 || ps[0].Start != 2048 || ps[0].Size*512 != raw.Size ||
				ps[0].Type != "0FC63DAF-8483-4772-8E79-3D69D8477DE4" || ps[0].Name != "r" {
				t.Fatalf("sfdisk reads:\n%s", out)
			}
			if got := sha256Range(t, disk.Image, 1<<20, raw.Size); got != raw.SHA256 {
				t.Errorf("the partition's bytes hash to %s, the raw image to %s", got, raw.SHA256)
			}
			fsckPartition(t, disk.Image, 1<<20, raw.Size)
			// The same disk again, byte for byte.
			again := build("again.gpt.img", verity)
			if a, b := testfs.FileSHA256(t, disk.Image), testfs.FileSHA256(t, again.Image); a != b {
				t.Errorf("two builds of one GPT disk differ: %s, %s", a, b)
			}
			qa := build("again.qcow2", verity)
			if a, b := testfs.FileSHA256(t, q.Image), testfs.FileSHA256(t, qa.Image); a != b {
				t.Errorf("two builds of one qcow2 image differ: %s, %s", a, b)
			}
		})
	}
}

// dataClusters counts the 64 KiB clusters of a file that are not all zero.
func dataClusters(t *testing.T, p string) int64 {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for off := 0; off < len(data); off += 1 << 16 {
		c := data[off:min(off+1<<16, len(data))]
		if strings.Trim(string(c), "\x00") != "" {
			n++
		}
	}
	return n
}

func sha256Range(t *testing.T, p string, off, n int64) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	part := filepath.Join(t.TempDir(), "part")
	w, err := os.Create(part)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for pos := off; pos < off+n; {
		k, err := f.ReadAt(buf[:min(int64(len(buf)), off+n-pos)], pos)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(buf[:k])
		pos += int64(k)
	}
	w.Close()
	return testfs.FileSHA256(t, part)
}

// fsckPartition runs e2fsck -fn on the file system at off in a disk image,
// through a loop device at that offset (the kernel here may not scan loop
// partitions), or skips without root.
func fsckPartition(t *testing.T, img string, off, size int64) {
	t.Helper()
	dev := testenv.Losetup(t, "--read-only", "--offset", strconv.FormatInt(off, 10), "--sizelimit", strconv.FormatInt(size, 10), img)
	testenv.Fsck(t, dev)
}
