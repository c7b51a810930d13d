package reader

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/internetarchive/olimage/tree"
)

// Seed images: 256 KiB mkfs.ext4 -d images with 1 KiB blocks (ext4 with
// metadata_csum, ext4 with inline_data, ext2 with block maps), made by
// the commands in testdata/README.
func seedImages(t testing.TB) [][]byte {
	t.Helper()
	paths, err := filepath.Glob("testdata/seed-*.img")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no seed images in testdata: %v", err)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// exercise runs every read path over an image, bounding how much file
// content it reads, and returns the first error.
func exercise(b []byte) error {
	fsys, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fsys.Info()
	fsys.Check(ctx)
	tr, err := fsys.Tree(ctx, false)
	if err != nil {
		return err
	}
	for _, e := range tr.Entries {
		if e.Type != tree.File {
			continue
		}
		r, err := e.Content.Open()
		if err != nil {
			return err
		}
		if _, err := io.CopyN(io.Discard, r, 1<<20); err != nil && err != io.EOF {
			return err
		}
	}
	if len(tr.Entries) > 0 {
		p := tr.Entries[len(tr.Entries)-1].Path()
		fsys.Stat(p)
		fsys.ReadDir(tree.Parent(p))
	}
	return nil
}

func TestSeedImages(t *testing.T) {
	for _, b := range seedImages(t) {
		if err := exercise(b); err != nil {
			t.Errorf("seed image: %v", err)
		}
		fsys, _ := Open(bytes.NewReader(b), int64(len(b)))
		wantClean(t, fsys)
	}
}

func FuzzImage(f *testing.F) {
	for _, b := range seedImages(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		exercise(b)
	})
}

func FuzzSuperblock(f *testing.F) {
	base := seedImages(f)[0]
	f.Add(base[1024:2048])
	f.Fuzz(func(t *testing.T, sb []byte) {
		img := bytes.Clone(base)
		copy(img[1024:2048], sb)
		fsys, err := Open(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			return
		}
		fsys.Info()
		fsys.Check(context.Background())
		fsys.Tree(context.Background(), false)
	})
}

// FuzzInode replaces the inode of a file in a real image and reads it.
func FuzzInode(f *testing.F) {
	base := seedImages(f)[0]
	fsys := openBytes(f, base)
	var offs []int64
	for _, p := range []string{"big", "d", "slow", "sparse"} {
		in, _, err := fsys.lookup(p)
		if err != nil {
			f.Fatal(err)
		}
		g, idx, _ := fsys.inodeLocation(in.ino)
		off := int64(fsys.groups[g].inodeTable)*fsys.bs + int64(idx)*int64(fsys.isize)
		offs = append(offs, off)
		f.Add(uint8(len(offs)-1), base[off:off+int64(fsys.isize)])
	}
	f.Fuzz(func(t *testing.T, which uint8, raw []byte) {
		if _, err := parseInode(raw, 12); err != nil {
			return
		}
		img := bytes.Clone(base)
		off := offs[int(which)%len(offs)]
		copy(img[off:off+int64(fsys.isize)], raw)
		exercise(img)
	})
}

// FuzzExtents walks an extent tree whose root is the first 60 bytes of
// the input and whose other node blocks come from the rest, in a real
// image.
func FuzzExtents(f *testing.F) {
	base := seedImages(f)[0]
	fsys := openBytes(f, base)
	in, _, err := fsys.lookup("big")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(in.block))
	// A depth-1 root pointing at block 200, which holds one leaf extent.
	root := make([]byte, 60)
	le.PutUint16(root[0:], 0xF30A)
	le.PutUint16(root[2:], 1)
	le.PutUint16(root[4:], 4)
	le.PutUint16(root[6:], 1)
	le.PutUint32(root[16:], 200)
	leaf := make([]byte, 1024)
	le.PutUint16(leaf[0:], 0xF30A)
	le.PutUint16(leaf[2:], 1)
	le.PutUint16(leaf[4:], 84)
	le.PutUint16(leaf[16:], 3)
	le.PutUint32(leaf[20:], 100)
	f.Add(append(root, leaf...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 60 {
			return
		}
		parseExtentHeader(b)
		img := bytes.Clone(base)
		copy(img[200*1024:], b[60:min(len(b), 60+50*1024)])
		fs2 := openBytes(t, img)
		raw := bytes.Clone(in.raw)
		copy(raw[0x28:0x64], b[:60])
		le.PutUint32(raw[0x04:], 1<<30) // a big size, so every extent counts
		x, err := parseInode(raw, in.ino)
		if err != nil {
			t.Fatal(err)
		}
		x.flags |= 0x80000
		ck := &checker{fs: fs2, meta: make([]uint64, 8), used: make([]uint64, 8), inUse: make([]uint64, 2), inodes: map[uint32]*inodeUse{}, dirsInG: make([]uint32, 1)}
		ext, err := fs2.walkExtents(x, ck)
		if err != nil {
			return
		}
		var prev uint64
		for _, e := range ext {
			if e.logical < prev || e.n == 0 || e.phys+e.n > fs2.blocks {
				t.Fatalf("bad extent %+v after %d", e, prev)
			}
			prev = e.end()
		}
		r := &fileReader{fs: fs2, ino: x.ino, ext: ext, size: 1 << 30}
		buf := make([]byte, 4096)
		for _, e := range ext {
			r.ReadAt(buf, int64(e.logical)*fs2.bs)
		}
	})
}

func FuzzDirBlock(f *testing.F) {
	for _, b := range seedImages(f) {
		fsys := openBytes(f, b)
		in, _, err := fsys.lookup("d/sub")
		if err != nil {
			f.Fatal(err)
		}
		if ext, err := fsys.fileExtents(in, nil); err == nil && len(ext) > 0 && !in.inline() {
			off := int64(ext[0].phys) * fsys.bs
			f.Add(b[off : off+fsys.bs])
		}
	}
	f.Add(make([]byte, 12))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := parseDirBlock(b, false, func(ino uint32, name []byte, ftype uint8) error {
			if ino == 0 || len(name) == 0 || len(name) > 255 {
				t.Fatalf("bad entry %d %q", ino, name)
			}
			n++
			return nil
		})
		if err == nil && n > len(b)/9 {
			t.Fatalf("%d entries in %d bytes", n, len(b))
		}
		classifyDirBlock(b, 1, true)
	})
}

// FuzzImagePatch applies small patches to the metadata of a seed image
// (its first 128 KiB: superblock, descriptors, bitmaps, inode tables,
// directories and small files), which reaches deeper than mutating the
// whole image at random. Each 3-byte record of patch is a 16-bit offset
// in 2-byte units and a byte to store there.
func FuzzImagePatch(f *testing.F) {
	seeds := seedImages(f)
	f.Add(uint8(0), []byte{0x12, 0x02, 0xFF})
	f.Add(uint8(1), []byte{0x00, 0x30, 0x01, 0x10, 0x30, 0x02})
	f.Add(uint8(2), []byte{0x34, 0x02, 0x07})
	f.Fuzz(func(t *testing.T, which uint8, patch []byte) {
		img := bytes.Clone(seeds[int(which)%len(seeds)])
		for ; len(patch) >= 3; patch = patch[3:] {
			off := int(le.Uint16(patch)) * 2
			if off < len(img) {
				img[off] = patch[2]
			}
		}
		exercise(img)
	})
}
