package format

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
)

func TestCrc32c(t *testing.T) {
	// The standard crc32c check value is for the inverted form.
	if got, want := ^Crc32c(^uint32(0), []byte("123456789")), uint32(0xE3069283); got != want {
		t.Fatalf("crc32c check value: got %#x, want %#x", got, want)
	}
}

func TestInodeMarshal(t *testing.T) {
	i := Inode{Mode: 0x81a4, UIDLo: 1, SizeLo: 2, Atime: 3, Ctime: 4, Mtime: 5, Dtime: 6, GIDLo: 7,
		LinksCount: 8, BlocksLo: 9, Flags: 10, Version: 11, Generation: 12, FileACLLo: 13, SizeHigh: 14,
		ObsoFaddr: 15, BlocksHigh: 16, FileACLHigh: 17, UIDHigh: 18, GIDHigh: 19, ChecksumLo: 20,
		Reserved: 21, ExtraIsize: 22, ChecksumHi: 23, CtimeExtra: 24, MtimeExtra: 25, AtimeExtra: 26,
		Crtime: 27, CrtimeExtra: 28, VersionHi: 29, Projid: 30}
	for k := range i.Block {
		i.Block[k] = byte(100 + k)
	}
	got := make([]byte, InodeFixedSize)
	i.Marshal(got)
	want, err := binary.Append(nil, binary.LittleEndian, &i)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Inode.Marshal differs from binary.Encode:\n got %x\nwant %x", got, want)
	}
}

func TestBackupGroup(t *testing.T) {
	var got []uint32
	for g := uint32(0); g < 130; g++ {
		if BackupGroup(g) {
			got = append(got, g)
		}
	}
	want := []uint32{0, 1, 3, 5, 7, 9, 25, 27, 49, 81, 125}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("backup groups: got %v, want %v", got, want)
	}
}

// mkfsImage makes a small reference image with the system's mke2fs.
func mkfsImage(t *testing.T) []byte {
	t.Helper()
	mkfs := testenv.Tool(t, "mkfs.ext4")
	img := filepath.Join(t.TempDir(), "ref.img")
	cmd := exec.Command(mkfs, "-q", "-F", "-b", "4096", "-I", "256", "-O", "^has_journal",
		"-U", "01234567-89ab-cdef-0123-456789abcdef", "-E", "hash_seed=11111111-2222-3333-4444-555555555555", img, "8M")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestChecksumsMatchMke2fs re-marshals structures of an mke2fs image and
// requires the same bytes, checksums included.
func TestChecksumsMatchMke2fs(t *testing.T) {
	img := mkfsImage(t)
	var sb Superblock
	if err := sb.Unmarshal(img[SuperblockOffset:]); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, SuperblockSize)
	sb.Marshal(got)
	if !bytes.Equal(got, img[SuperblockOffset:SuperblockOffset+SuperblockSize]) {
		t.Fatalf("superblock re-marshalled differs")
	}
	seed := sb.CsumSeed()

	var gd GroupDesc
	gdb := img[BlockSize : BlockSize+DescSize]
	if err := gd.Unmarshal(gdb); err != nil {
		t.Fatal(err)
	}
	gotgd := make([]byte, DescSize)
	gd.Marshal(gotgd, 0, seed)
	if !bytes.Equal(gotgd, gdb) {
		t.Fatalf("group descriptor: got %x, want %x", gotgd, gdb)
	}

	itable := uint64(gd.InodeTableHi)<<32 | uint64(gd.InodeTableLo)
	for _, ino := range []uint32{1, 2, 3, 7, 11} {
		off := int(itable)*BlockSize + int(ino-1)*InodeSize
		want := img[off : off+InodeSize]
		got := bytes.Clone(want)
		SetInodeChecksum(got, seed, ino)
		if !bytes.Equal(got, want) {
			t.Errorf("inode %d checksum: got %x, want %x", ino, got[0x7C:0x84], want[0x7C:0x84])
		}
	}

	// Root directory block: its leaf tail checksum.
	var root Inode
	off := int(itable)*BlockSize + InodeSize
	if err := root.Unmarshal(img[off:]); err != nil {
		t.Fatal(err)
	}
	blk := int(le.Uint32(root.Block[20:]))
	want := img[blk*BlockSize : (blk+1)*BlockSize]
	gotb := bytes.Clone(want)
	SetDirLeafTail(gotb, InodeCsumSeed(seed, RootIno, root.Generation))
	if !bytes.Equal(gotb, want) {
		t.Errorf("root directory tail: got %x, want %x", gotb[DirLeafSpace:], want[DirLeafSpace:])
	}
}

var hashRE = regexp.MustCompile(`is 0x([0-9a-f]+) \(minor 0x([0-9a-f]+)\)`)

// TestDirHashMatchesDebugfs compares DirHash with debugfs's dx_hash.
func TestDirHashMatchesDebugfs(t *testing.T) {
	debugfs := testenv.Tool(t, "debugfs")
	seed := [16]byte{0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55}
	names := []string{"a", "hello", "lost+found", "abcd", "abcdefgh", "0123456789abcdef0123456789abcdef",
		"0123456789abcdef0123456789abcdef!", "h\xe9llo-\xff\x80", string(bytes.Repeat([]byte("xyz"), 85))}
	for _, tc := range []struct {
		alg     string // debugfs takes the version number
		version uint8
		seed    [16]byte
		minor   bool
	}{
		{"1", HashHalfMD4, seed, true},
		{"1", HashHalfMD4, [16]byte{}, true},
		{"2", HashTea, seed, true},
		{"4", HashHalfMD4Unsigned, seed, true},
		{"5", HashTeaUnsigned, seed, true},
	} {
		for _, name := range names {
			args := "dx_hash -h " + tc.alg
			if tc.seed != ([16]byte{}) {
				args += " -s 11111111-2222-3333-4444-555555555555"
			}
			out, err := exec.Command(debugfs, "-R", args+" "+name).CombinedOutput()
			if err != nil {
				t.Fatalf("debugfs: %v\n%s", err, out)
			}
			m := hashRE.FindSubmatch(out)
			if m == nil {
				t.Fatalf("debugfs output: %s", out)
			}
			wantMajor, _ := strconv.ParseUint(string(m[1]), 16, 32)
			wantMinor, _ := strconv.ParseUint(string(m[2]), 16, 32)
			major, minor := DirHash([]byte(name), tc.version, tc.seed)
			if uint64(major) != wantMajor&^1 || (tc.minor && uint64(minor) != wantMinor) {
				t.Errorf("%s %q: got %#x/%#x, want %#x/%#x", tc.alg, name, major, minor, wantMajor, wantMinor)
			}
		}
	}
}
