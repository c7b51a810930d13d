package image

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	_ "github.com/internetarchive/olimage/internal/golden" // registers -update
	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
)

// mkfs makes a small ext4 image with mkfs.ext4 -d and returns its bytes.
func mkfs(t *testing.T) []byte {
	t.Helper()
	tool := testenv.Tool(t, "mkfs.ext4")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello"), []byte("hello\n"), 0o644)
	img := filepath.Join(t.TempDir(), "fs.img")
	if out, err := exec.Command(tool, "-q", "-F", "-d", dir, img, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func readAll(t *testing.T, f *File) []byte {
	t.Helper()
	buf := make([]byte, f.Size)
	if n, err := f.ReadAt(buf, 0); n != len(buf) {
		t.Fatalf("ReadAt: %d of %d bytes: %v", n, len(buf), err)
	}
	return buf
}

// gptDisk puts fs into partition 2 of a GPT disk, behind an empty partition 1.
func gptDisk(t *testing.T, fs []byte) string {
	t.Helper()
	const sector = 512
	size := int64(len(fs)) + 4<<20
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	start := uint64(2048 + 1024)
	table := &gpt.Table{
		LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true,
		Partitions: []*gpt.Partition{
			{Index: 1, Start: 2048, End: 2048 + 1023, Type: gpt.LinuxFilesystem, Name: "empty"},
			{Index: 2, Start: start, End: start + uint64(len(fs))/sector - 1, Type: gpt.LinuxFilesystem, Name: "data"},
		},
	}
	w, err := file.New(f, false).Writable()
	if err != nil {
		t.Fatal(err)
	}
	if err := table.Write(w, size); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(fs, int64(start)*sector); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpen(t *testing.T) {
	fs := mkfs(t)
	var zs, gz bytes.Buffer
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(fs)
	zw.Close()
	gw := gzip.NewWriter(&gz)
	gw.Write(fs)
	gw.Close()
	cases := []struct {
		name, path string
		format     Format
		partition  int
	}{
		{"raw", testfs.Temp(t, "a.img", fs), Raw, 0},
		{"zstd", testfs.Temp(t, "a.img.zst", zs.Bytes()), Zstd, 0},
		{"gzip", testfs.Temp(t, "a.img.gz", gz.Bytes()), Gzip, 0},
		{"gzip without the name", testfs.Temp(t, "a.img", gz.Bytes()), Gzip, 0},
		{"gpt", gptDisk(t, fs), Raw, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Open(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if f.Format != tc.format || f.Partition != tc.partition || f.Size != int64(len(fs)) {
				t.Errorf("format %s partition %d size %d; want %s %d %d", f.Format, f.Partition, f.Size, tc.format, tc.partition, len(fs))
			}
			if !bytes.Equal(readAll(t, f), fs) {
				t.Errorf("bytes read differ from the file system's")
			}
		})
	}
}

func TestOpenBadInput(t *testing.T) {
	fs := mkfs(t)
	var zs bytes.Buffer
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(fs)
	zw.Close()
	cases := []struct {
		name, path, want string
	}{
		{"random bytes", testfs.Temp(t, "r.img", bytes.Repeat([]byte{0x5a, 0x17, 0x99}, 10000)), "no ext4 file system found"},
		{"empty", testfs.Temp(t, "e.img", nil), "no ext4 file system found"},
		{"truncated zstd", testfs.Temp(t, "t.img.zst", zs.Bytes()[:zs.Len()/2]), "zstd: "},
		{"directory", t.TempDir(), "is a directory"},
		{"missing", filepath.Join(t.TempDir(), "nope.img"), "no such file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Open(tc.path)
			if err == nil {
				f.Close()
				t.Fatal("got no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Errorf("got %q, want it to name %s and say %q", err, tc.path, tc.want)
			}
		})
	}
	if _, err := Open(testfs.Temp(t, "r.img", make([]byte, 4096))); !errors.Is(err, ErrNoFS) {
		t.Errorf("zeros: got %v, want ErrNoFS", err)
	}
}

// TestDecompressBound refuses a compressed image that expands past the size
// its superblock gives, as a decompression bomb would.
func TestDecompressBound(t *testing.T) {
	fs := mkfs(t)
	big := append(append([]byte(nil), fs...), make([]byte, 3<<20)...)
	var zs bytes.Buffer
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(big)
	zw.Close()
	p := testfs.Temp(t, "bomb.img.zst", zs.Bytes())
	f, err := Open(p)
	if err == nil {
		f.Close()
		t.Fatal("got no error for a stream larger than its file system")
	}
	if !strings.Contains(err.Error(), "expands past the 8388608 bytes its superblock gives") || !strings.Contains(err.Error(), p) {
		t.Errorf("got %q", err)
	}
}
