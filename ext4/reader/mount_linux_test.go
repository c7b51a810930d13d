package reader

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
)

// TestKernelWritten reads an image the kernel wrote: an htree directory
// grown by the kernel, a file with punched holes (an extent tree deeper
// than the inode), unwritten (fallocated) extents, xattrs and links.
func TestKernelWritten(t *testing.T) {
	for _, opts := range [][]string{{"-b", "4096"}, {"-b", "1024", "-O", "^metadata_csum,^64bit"}} {
		t.Run(strings.Join(opts, " "), func(t *testing.T) {
			img := mkfs(t, "", 64<<10, opts...)
			mnt := t.TempDir()
			testenv.MountLoop(t, img, mnt, "rw")
			for i := range 3000 {
				writeFile(t, mnt, fmt.Sprintf("many/file-%05d-with-a-long-name", i), []byte(fmt.Sprint(i)), 0o644)
			}
			// Punch every other 4 KiB of a 4 MiB file.
			p := writeFile(t, mnt, "punched", randBytes(3, 4<<20), 0o644)
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			const punch = 0x02 | 0x01 // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
			for off := int64(4096); off < 4<<20; off += 8192 {
				if err := syscall.Fallocate(int(f.Fd()), punch, off, 4096); err != nil {
					t.Fatalf("punch: %v", err)
				}
			}
			f.Close()
			// Preallocated (unwritten) space inside the file.
			p = writeFile(t, mnt, "prealloc", []byte("head"), 0o644)
			f, _ = os.OpenFile(p, os.O_RDWR, 0)
			if err := syscall.Fallocate(int(f.Fd()), 0, 0, 1<<20); err != nil {
				t.Fatalf("fallocate: %v", err)
			}
			f.Close()
			x := writeFile(t, mnt, "xattrs", []byte("x"), 0o600)
			syscall.Setxattr(x, "user.small", []byte("v"), 0)
			syscall.Setxattr(x, "user.large", bytes.Repeat([]byte("L"), 900), 0)
			os.Symlink(strings.Repeat("s", 200), filepath.Join(mnt, "slowlink"))
			os.Link(x, filepath.Join(mnt, "many/xattrs-link"))
			want := sourceTree(t, mnt)
			testenv.Umount(t, mnt)
			testenv.FsckExit(t, img)

			fsys := openImage(t, img)
			got := readTree(t, fsys)
			compareTrees(t, withoutPrefix(want, "lost+found"), got)
			wantClean(t, fsys)
			in, _, err := fsys.lookup("punched")
			if err != nil {
				t.Fatal(err)
			}
			if h, _ := parseExtentHeader(in.block); h.depth == 0 {
				t.Errorf("punched: extent tree depth 0, want a deeper tree")
			}
			if d, _, _ := fsys.lookup("many"); !d.htree() {
				t.Errorf("many: no htree index")
			}
		})
	}
}
