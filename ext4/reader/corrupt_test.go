package reader

import (
	"github.com/internetarchive/olimage/internal/testenv"
	"golang.org/x/sys/unix"

	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corruptFixture is a small metadata_csum image and the reader's view of
// where its structures are.
type corruptFixture struct {
	img  []byte
	fsys *FS
}

func newCorruptFixture(t *testing.T, opts ...string) *corruptFixture {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, src, "f", []byte("file content"), 0o644)
	x := writeFile(t, src, "x", []byte("xattr holder"), 0o644)
	if err := unix.Setxattr(x, "user.big", bytes.Repeat([]byte("v"), 600), 0); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		writeFile(t, src, "d/entry-"+strings.Repeat("n", i), []byte("x"), 0o644)
	}
	return loadCorruptFixture(t, mkfs(t, src, 4<<10, append([]string{"-b", "1024"}, opts...)...))
}

// loadCorruptFixture reads the image file img, which must be clean, as a
// fixture to corrupt.
func loadCorruptFixture(t *testing.T, img string) *corruptFixture {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	f := &corruptFixture{img: b}
	f.fsys = f.open(t)
	wantClean(t, f.fsys)
	return f
}

func (f *corruptFixture) open(t *testing.T) *FS {
	t.Helper()
	return openBytes(t, f.img)
}

// inodeOffset is the byte offset of inode ino in the image.
func (f *corruptFixture) inodeOffset(t *testing.T, ino uint32) int64 {
	fs := f.fsys
	g, idx, err := fs.inodeLocation(ino)
	if err != nil {
		t.Fatal(err)
	}
	return int64(fs.groups[g].inodeTable)*fs.bs + int64(idx)*int64(fs.isize)
}

func (f *corruptFixture) inodeOf(t *testing.T, p string) *inode {
	in, _, err := f.fsys.lookup(p)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// firstBlock is the byte offset of the first data block of p.
func (f *corruptFixture) firstBlock(t *testing.T, p string) int64 {
	in := f.inodeOf(t, p)
	ext, err := f.fsys.fileExtents(in, nil)
	if err != nil || len(ext) == 0 {
		t.Fatalf("%s: extents %v %v", p, ext, err)
	}
	return int64(ext[0].phys) * f.fsys.bs
}

// wantFinding checks the image held in img and wants a finding about
// structure whose message holds msg.
func wantFinding(t *testing.T, img []byte, structure, msg string) {
	t.Helper()
	got := openBytes(t, img).Check(context.Background())
	for _, f := range got {
		if f.Structure == structure && strings.Contains(f.Msg, msg) {
			return
		}
	}
	t.Errorf("no finding %q: %q; got:", structure, msg)
	for _, f := range got {
		t.Logf("  %s", f)
	}
}

func TestCheckFindsCorruption(t *testing.T) {
	base := newCorruptFixture(t)
	fsys := base.fsys
	fIno := base.inodeOf(t, "f").ino
	dIno := base.inodeOf(t, "d").ino
	xIn := base.inodeOf(t, "x")
	gd := int64(fsys.gdtBlk[0]) * fsys.bs
	cases := []struct {
		name      string
		off       func(t *testing.T) int64
		xor       byte
		structure string
		msg       string
	}{
		{"superblock", func(*testing.T) int64 { return 1024 + 120 }, 0x20, "superblock", "checksum mismatch"},
		{"group descriptor", func(*testing.T) int64 { return gd + 0x10 }, 0x01, "group 0 descriptor", "checksum mismatch"},
		{"inode", func(t *testing.T) int64 { return base.inodeOffset(t, fIno) + 0x10 }, 0x01, "inode " + itoa(fIno), "inode checksum mismatch"},
		{"directory block", func(t *testing.T) int64 { return base.firstBlock(t, "d") + 30 }, 0x01, "directory inode " + itoa(dIno) + " block 0", "checksum mismatch"},
		{"xattr block", func(t *testing.T) int64 { return int64(xIn.fileACL)*fsys.bs + 200 }, 0x01, "xattr block " + itoa(uint32(xIn.fileACL)), "checksum mismatch"},
		{"block bitmap", func(t *testing.T) int64 { return int64(fsys.groups[0].blockBitmap)*fsys.bs + 500 }, 0x10, "group 0 block bitmap", "checksum mismatch"},
		{"block bitmap use", func(t *testing.T) int64 { return int64(fsys.groups[0].blockBitmap)*fsys.bs + 500 }, 0x10, "group 0 block bitmap", "nothing uses it"},
		{"inode bitmap", func(t *testing.T) int64 { return int64(fsys.groups[0].inodeBitmap)*fsys.bs + 100 }, 0x01, "group 0 inode bitmap", "checksum mismatch"},
		{"inode bitmap use", func(t *testing.T) int64 { return int64(fsys.groups[0].inodeBitmap)*fsys.bs + 100 }, 0x01, "group 0 inode bitmap", "not reachable"},
		{"free count", func(t *testing.T) int64 { return gd + 0x0C }, 0x01, "group 0 descriptor", "free blocks count"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := bytes.Clone(base.img)
			img[tc.off(t)] ^= tc.xor
			wantFinding(t, img, tc.structure, tc.msg)
		})
	}
}

func itoa(n uint32) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

// TestBadInput feeds damaged images to Open, Tree and Check: each must
// fail cleanly, with the right sentinel, and never panic.
func TestBadInput(t *testing.T) {
	base := newCorruptFixture(t)
	fsys := base.fsys
	fIno := base.inodeOf(t, "f").ino
	dIn := base.inodeOf(t, "d")
	dBlock := base.firstBlock(t, "d")
	put16 := func(b []byte, off int64, v uint16) { le.PutUint16(b[off:], v) }
	put32 := func(b []byte, off int64, v uint32) { le.PutUint32(b[off:], v) }
	cases := []struct {
		name   string
		mutate func(t *testing.T, b []byte) []byte
		want   error  // sentinel from Open or Tree
		msg    string // substring of the error
	}{
		{"empty", func(t *testing.T, b []byte) []byte { return nil }, ErrNotExt4, "too small"},
		{"zeros", func(t *testing.T, b []byte) []byte { return make([]byte, len(b)) }, ErrNotExt4, "magic"},
		{"random", func(t *testing.T, b []byte) []byte { return randBytes(1, len(b)) }, ErrNotExt4, "magic"},
		{"truncated", func(t *testing.T, b []byte) []byte { return b[:len(b)/2] }, ErrCorrupt, "truncated"},
		{"block size", func(t *testing.T, b []byte) []byte { put32(b, 1024+24, 30); return b }, ErrCorrupt, "block size"},
		{"blocks per group", func(t *testing.T, b []byte) []byte { put32(b, 1024+32, 0); return b }, ErrCorrupt, "blocks per group"},
		{"inodes count", func(t *testing.T, b []byte) []byte { put32(b, 1024+0, 0xFFFFFFFF); return b }, ErrCorrupt, "inode count"},
		{"inode size", func(t *testing.T, b []byte) []byte { put16(b, 1024+88, 100); return b }, ErrCorrupt, "inode size"},
		{"unknown feature", func(t *testing.T, b []byte) []byte { put32(b, 1024+96, le.Uint32(b[1024+96:])|0x80000000); return b }, ErrUnsupported, "FEATURE_I31"},
		{"inode table outside", func(t *testing.T, b []byte) []byte {
			put32(b, int64(fsys.gdtBlk[0])*fsys.bs+8, 0x7FFFFFFF)
			return b
		}, ErrCorrupt, "group 0 descriptor: inode table"},
		{"extent magic", func(t *testing.T, b []byte) []byte {
			put16(b, base.inodeOffset(t, fIno)+0x28, 0x1234)
			return b
		}, ErrCorrupt, "inode " + itoa(fIno) + ": bad extent header magic"},
		{"extent depth", func(t *testing.T, b []byte) []byte {
			put16(b, base.inodeOffset(t, fIno)+0x28+6, 9)
			return b
		}, ErrCorrupt, "inode " + itoa(fIno) + ": extent tree depth 9 exceeds 5"},
		{"extent loop", func(t *testing.T, b []byte) []byte {
			// Make the root an index whose child is a block that is an
			// index pointing back to itself.
			off := base.inodeOffset(t, fIno) + 0x28
			blk := uint32(fsys.blocks - 10) // free
			nodeOff := int64(blk) * fsys.bs
			put16(b, off+6, 2) // depth 2
			put16(b, off+2, 1)
			put32(b, off+12, 0)
			put32(b, off+16, blk)
			put16(b, off+20, 0)
			node := b[nodeOff:]
			clear(node[:fsys.bs])
			put16(node, 0, 0xF30A)
			put16(node, 2, 1)
			put16(node, 4, 84)
			put16(node, 6, 1)
			put32(node, 12, 0)
			put32(node, 16, blk)
			return b
		}, ErrCorrupt, "visits block"},
		{"extent out of range", func(t *testing.T, b []byte) []byte {
			put32(b, base.inodeOffset(t, fIno)+0x28+12+8, 0x7FFFFFFF)
			return b
		}, ErrCorrupt, "outside the file system"},
		{"rec_len", func(t *testing.T, b []byte) []byte { put16(b, dBlock+4, 7); return b }, ErrCorrupt, "bad rec_len 7"},
		{"rec_len past end", func(t *testing.T, b []byte) []byte { put16(b, dBlock+4, 0x4000); return b }, ErrCorrupt, "runs past the end"},
		{"name_len", func(t *testing.T, b []byte) []byte {
			// The third entry (first real name after "." and "..").
			off := dBlock + 12 + 12
			b[off+6] = 200
			return b
		}, ErrCorrupt, "name_len 200 beyond rec_len"},
		{"directory cycle", func(t *testing.T, b []byte) []byte {
			// Point "d/.."'s sibling entry at d itself: d/entry- becomes d.
			off := dBlock + 24
			put32(b, off, dIn.ino)
			b[off+7] = 2
			return b
		}, ErrCorrupt, "loop"},
		{"entry to free inode", func(t *testing.T, b []byte) []byte {
			put32(b, dBlock+24, fsys.inodes-1)
			return b
		}, ErrCorrupt, "unused inode"},
		{"entry out of range", func(t *testing.T, b []byte) []byte {
			put32(b, dBlock+24, fsys.inodes+10)
			return b
		}, ErrCorrupt, "out of range"},
		{"symlink size", func(t *testing.T, b []byte) []byte {
			off := base.inodeOffset(t, fIno)
			put16(b, off, 0xA1FF)
			put32(b, off+4, 0xFFFFFFF0)
			return b
		}, ErrCorrupt, "symlink target of"},
		{"xattr value past end", func(t *testing.T, b []byte) []byte {
			xb := int64(base.inodeOf(t, "x").fileACL) * fsys.bs
			put32(b, xb+32+8, 0xFFFF)
			return b
		}, ErrCorrupt, "runs past the end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := tc.mutate(t, bytes.Clone(base.img))
			fsys, err := Open(bytes.NewReader(img), int64(len(img)))
			if err == nil {
				_, err = fsys.Tree(context.Background(), true)
				fsys.Check(context.Background()) // must not panic
			}
			if err == nil {
				t.Fatalf("no error")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q (is %v: %v), want one containing %q", err, tc.want, errors.Is(err, tc.want), tc.msg)
			}
		})
	}
}

// TestCheckFindsIndexCorruption damages an extent tree block and an htree
// index block and expects their checksum findings.
func TestCheckFindsIndexCorruption(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	for i := range 500 {
		writeFile(t, src, "many/file-"+strings.Repeat("x", 20)+itoa(uint32(i)), []byte("x"), 0o644)
	}
	img := mkfs(t, src, 8<<10, "-b", "1024", "-O", "^has_journal")
	indexDirs(t, img)
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	os.WriteFile(big, randBytes(1, 1000*1024), 0o644)
	reqs := []string{"write " + big + " big"}
	for i := 1; i < 1000; i += 2 {
		reqs = append(reqs, "punch big "+itoa(uint32(i))+" "+itoa(uint32(i)))
	}
	os.WriteFile(filepath.Join(dir, "cmds"), []byte(strings.Join(reqs, "\n")+"\n"), 0o644)
	testenv.Run(t, "debugfs", "-w", "-f", filepath.Join(dir, "cmds"), img)
	testenv.FsckExit(t, img)
	base := loadCorruptFixture(t, img)
	fsys := base.fsys

	bigIn := base.inodeOf(t, "big")
	h, err := parseExtentHeader(bigIn.block)
	if err != nil || h.depth == 0 {
		t.Fatalf("big: extent depth %d (%v), want an index root", h.depth, err)
	}
	child := uint64(le.Uint16(bigIn.block[12+8:]))<<32 | uint64(le.Uint32(bigIn.block[12+4:]))
	many := base.inodeOf(t, "many")
	manyBlock := base.firstBlock(t, "many") // logical block 0: the dx root
	cases := []struct {
		name      string
		off       int64
		structure string
		msg       string
	}{
		{"extent block", int64(child)*fsys.bs + 12 + 4, "inode " + itoa(bigIn.ino) + " extent block " + itoa(uint32(child)), "checksum mismatch"},
		{"htree root", manyBlock + 0x20 + 8 + 1, "directory inode " + itoa(many.ino) + " block 0", "htree index checksum mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := bytes.Clone(base.img)
			img[tc.off] ^= 0x01
			wantFinding(t, img, tc.structure, tc.msg)
		})
	}
}
