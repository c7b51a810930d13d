package reader

import (
	"context"
	"errors"
	"fmt"

	"github.com/internetarchive/olimage/ext4/format"
)

// Finding is one problem Check found.
type Finding struct {
	Structure string // "superblock", "group 3 descriptor", "inode 1234", "directory inode 12 block 5"
	Path      string // path of the file concerned, when known
	Msg       string
}

func (f Finding) String() string {
	if f.Path != "" {
		return f.Structure + " (/" + f.Path + "): " + f.Msg
	}
	return f.Structure + ": " + f.Msg
}

// Caps on what Check reports, so a badly damaged image gives a readable
// report.
const (
	maxFindings        = 1000
	maxBitmapFindings  = 10 // mismatching bits reported one by one per group and bitmap
	checkFindingsLimit = "too many findings; the rest are not reported"
)

// checker accumulates what Check sees while walking the file system.
type checker struct {
	fs       *FS
	findings []Finding
	full     bool

	meta  []uint64 // blocks holding file system metadata
	used  []uint64 // blocks in use: metadata and every block an inode owns
	inUse []uint64 // inodes in use: reserved and reachable

	inodes  map[uint32]*inodeUse
	dirsInG []uint32 // directories per group
}

// inodeUse is what Check learns about one reachable inode.
type inodeUse struct {
	links   uint16
	names   int
	subdirs int
	dir     bool
	path    string
}

func setBit(m []uint64, i uint64)      { m[i/64] |= 1 << (i % 64) }
func getBit(m []uint64, i uint64) bool { return m[i/64]&(1<<(i%64)) != 0 }

func (c *checker) add(structure, path, f string, args ...any) {
	if c.full {
		return
	}
	if len(c.findings) >= maxFindings {
		c.findings = append(c.findings, Finding{Structure: "check", Msg: checkFindingsLimit})
		c.full = true
		return
	}
	c.findings = append(c.findings, Finding{Structure: structure, Path: path, Msg: fmt.Sprintf(f, args...)})
}

// addErr records an error met while walking.
func (c *checker) addErr(err error, path string) {
	var ce *CorruptError
	if errors.As(err, &ce) {
		c.add(ce.Structure, path, "%s", ce.Msg)
		return
	}
	c.add("file system", path, "%v", err)
}

func (c *checker) useBlocks(b, n uint64, ino uint32) {
	for i := uint64(0); i < n && b+i < c.fs.blocks; i++ {
		setBit(c.used, b+i)
	}
}

func (c *checker) metaBlocks(b, n uint64) {
	for i := uint64(0); i < n && b+i < c.fs.blocks; i++ {
		setBit(c.meta, b+i)
		setBit(c.used, b+i)
	}
}

func (c *checker) inodeSeed(in *inode) uint32 {
	return format.InodeCsumSeed(c.fs.seed, in.ino, in.generation)
}

func (c *checker) extentBlock(in *inode, blk uint64, b []byte) {
	if !c.fs.csum {
		return
	}
	ok, err := extentTailOK(b, c.inodeSeed(in))
	if err != nil {
		return // the walk reports the broken header
	}
	if !ok {
		c.add(fmt.Sprintf("inode %d extent block %d", in.ino, blk), c.pathOf(in.ino), "checksum mismatch")
	}
}

func (c *checker) pathOf(ino uint32) string {
	if u := c.inodes[ino]; u != nil {
		return u.path
	}
	return ""
}

func (c *checker) dirBlock(in *inode, lblk uint64, b []byte, kind dirBlockKind) {
	if !c.fs.csum {
		return
	}
	s := fmt.Sprintf("directory inode %d block %d", in.ino, lblk)
	seed := c.inodeSeed(in)
	switch kind {
	case dirLeaf:
		t := b[len(b)-12:]
		if le.Uint32(t) != 0 || le.Uint16(t[4:]) != 12 || t[6] != 0 || t[7] != format.FtDirCsum {
			c.add(s, c.pathOf(in.ino), "no checksum tail")
			return
		}
		if le.Uint32(t[8:]) != format.Crc32c(seed, b[:len(b)-12]) {
			c.add(s, c.pathOf(in.ino), "directory block checksum mismatch")
		}
	case dirDxRoot, dirDxNode:
		countOff := 8
		if kind == dirDxRoot {
			countOff = 24 + int(b[29])
		}
		if countOff+4 > len(b) {
			c.add(s, c.pathOf(in.ino), "htree index header runs past the block")
			return
		}
		limit, count := int(le.Uint16(b[countOff:])), int(le.Uint16(b[countOff+2:]))
		tail := countOff + limit*8
		if count > limit || tail+8 > len(b) {
			c.add(s, c.pathOf(in.ino), "htree index count %d, limit %d do not fit the block", count, limit)
			return
		}
		var zero [4]byte
		sum := format.Crc32c(seed, b[:countOff+count*8])
		sum = format.Crc32c(sum, b[tail:tail+4])
		sum = format.Crc32c(sum, zero[:])
		if le.Uint32(b[tail+4:]) != sum {
			c.add(s, c.pathOf(in.ino), "htree index checksum mismatch")
		}
	}
}

func (c *checker) xattrBlock(in *inode, b []byte) {
	c.useBlocks(in.fileACL, 1, in.ino)
	if !c.fs.csum {
		return
	}
	var nb [8]byte
	le.PutUint64(nb[:], in.fileACL)
	var zero [4]byte
	sum := format.Crc32c(c.fs.seed, nb[:])
	sum = format.Crc32c(sum, b[:16])
	sum = format.Crc32c(sum, zero[:])
	sum = format.Crc32c(sum, b[20:])
	if le.Uint32(b[16:]) != sum {
		c.add(fmt.Sprintf("xattr block %d", in.fileACL), c.pathOf(in.ino), "checksum mismatch (inode %d)", in.ino)
	}
}

func (c *checker) eaInode(vin *inode) {
	if getBit(c.inUse, uint64(vin.ino-1)) {
		return
	}
	c.visitInode(vin, "", false)
}

func (c *checker) dotEntry(d *inode, name string, ino uint32, parent uint32, path string) {
	want := d.ino
	if name == ".." {
		want = parent
	}
	if ino != want {
		c.add(fmt.Sprintf("directory inode %d", d.ino), path, "%q is inode %d, want %d", name, ino, want)
	}
}

// visitInode checks an inode met for the first time: checksum, blocks.
// Directories' blocks are marked as the walk reads them.
func (c *checker) visitInode(in *inode, path string, named bool) {
	fs := c.fs
	setBit(c.inUse, uint64(in.ino-1))
	if named {
		c.inodes[in.ino] = &inodeUse{links: in.links, dir: in.isDir(), path: path}
	}
	if fs.csum && !fs.inodeChecksumOK(in.raw, in.ino) {
		c.add(fmt.Sprintf("inode %d", in.ino), path, "inode checksum mismatch")
	}
	if in.isDir() {
		c.dirsInG[(in.ino-1)/fs.ipg]++
		return
	}
	if !in.inline() && !(in.isLink() && fs.fastSymlink(in)) && (in.isReg() || in.isLink() || !named) {
		if _, err := fs.fileExtents(in, c); err != nil {
			c.addErr(err, path)
		}
	}
	if !named && in.fileACL != 0 {
		if _, err := fs.blockXattrs(in, c); err != nil {
			c.addErr(err, path)
		}
	}
}

// Check verifies the file system's structure: superblock, group
// descriptor, bitmap, inode, extent block, directory block, htree index
// and xattr block checksums (when metadata_csum is on), the bitmaps
// against the blocks and inodes actually in use, free counts, link counts
// and directory entries. It reads every directory and inode but no file
// content. It returns nil for a clean file system.
func (fs *FS) Check(ctx context.Context) []Finding {
	c := &checker{
		fs:      fs,
		meta:    make([]uint64, (fs.blocks+63)/64),
		used:    make([]uint64, (fs.blocks+63)/64),
		inUse:   make([]uint64, (uint64(fs.inodes)+63)/64),
		inodes:  map[uint32]*inodeUse{},
		dirsInG: make([]uint32, fs.ngroups),
	}
	fs.checkSuper(c)
	fs.checkDescriptors(c)
	fs.markMetadata(c)
	fs.checkSpecialInodes(c)
	if err := fs.checkTree(ctx, c); err != nil {
		c.addErr(err, "")
		return c.findings
	}
	fs.checkLinks(c)
	if err := ctx.Err(); err != nil {
		c.addErr(err, "")
		return c.findings
	}
	if err := fs.checkBitmaps(ctx, c); err != nil {
		c.addErr(err, "")
	}
	return c.findings
}

func (fs *FS) checkSuper(c *checker) {
	sb := &fs.sb
	if fs.csum {
		if want := format.Crc32c(^uint32(0), fs.sbRaw[:format.SuperblockSize-4]); want != sb.Checksum {
			c.add("superblock", "", "checksum mismatch (stored %#08x, computed %#08x)", sb.Checksum, want)
		}
	}
	if sb.State&format.StateClean == 0 {
		c.add("superblock", "", "file system was not cleanly unmounted")
	}
	if sb.State&2 != 0 {
		c.add("superblock", "", "file system has errors recorded")
	}
	if dirty, err := fs.journalDirty(); err != nil {
		c.add("journal", "", "%v", err)
	} else if dirty {
		c.add("superblock", "", "journal needs recovery")
	}
	if sb.FreeInodesCount > sb.InodesCount {
		c.add("superblock", "", "%d free inodes of %d", sb.FreeInodesCount, sb.InodesCount)
	}
}

// crc16 is the CRC-16 (polynomial 0x8005, reflected) of uninit_bg group
// descriptor checksums.
func crc16(crc uint16, b []byte) uint16 {
	for _, x := range b {
		crc ^= uint16(x)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// descChecksum computes group g's descriptor checksum.
func (fs *FS) descChecksum(g uint32, d []byte) uint16 {
	var gb [4]byte
	le.PutUint32(gb[:], g)
	if fs.csum {
		var zero [2]byte
		c := format.Crc32c(fs.seed, gb[:])
		c = format.Crc32c(c, d[:0x1E])
		c = format.Crc32c(c, zero[:])
		c = format.Crc32c(c, d[0x20:])
		return uint16(c)
	}
	c := crc16(0xFFFF, fs.sb.UUID[:])
	c = crc16(c, gb[:])
	c = crc16(c, d[:0x1E])
	if len(d) > 0x20 {
		c = crc16(c, d[0x20:])
	}
	return c
}

func (fs *FS) checkDescriptors(c *checker) {
	for g := range fs.groups {
		gr := &fs.groups[g]
		s := fmt.Sprintf("group %d descriptor", g)
		if fs.csum || fs.gdtCsum {
			if want := fs.descChecksum(uint32(g), gr.raw); want != gr.checksum {
				c.add(s, "", "checksum mismatch (stored %#04x, computed %#04x)", gr.checksum, want)
			}
		}
		if uint32(le.Uint16(gr.raw[28:]))|func() uint32 {
			if fs.dsize >= 64 {
				return uint32(le.Uint16(gr.raw[50:])) << 16
			}
			return 0
		}() > fs.ipg {
			c.add(s, "", "%d unused inode table entries, more than %d inodes per group", gr.itableUnused, fs.ipg)
		}
		if gr.freeBlocks > uint32(fs.groupBlocks(uint32(g))) {
			c.add(s, "", "%d free blocks, more than the group's %d", gr.freeBlocks, fs.groupBlocks(uint32(g)))
		}
		if gr.freeInodes > fs.ipg {
			c.add(s, "", "%d free inodes, more than the group's %d", gr.freeInodes, fs.ipg)
		}
	}
}

// markMetadata marks superblocks, descriptor tables, reserved descriptor
// blocks, bitmaps and inode tables as in use.
func (fs *FS) markMetadata(c *checker) {
	metaBG := fs.sb.FeatureIncompat&format.IncompatMetaBG != 0
	gdt := uint64(len(fs.gdtBlk))
	if metaBG {
		gdt = uint64(fs.sb.FirstMetaBg)
	}
	dpb := fs.descPerBlock()
	for g := uint32(0); g < fs.ngroups; g++ {
		start := fs.groupStart(g)
		if fs.hasSuper(g) {
			c.metaBlocks(start, 1+gdt+uint64(fs.sb.ReservedGdtBlocks))
		}
		if metaBG {
			mg := uint64(g) / dpb
			if mg >= uint64(fs.sb.FirstMetaBg) {
				if i := uint64(g) % dpb; i == 0 || i == 1 || i == dpb-1 {
					b := start
					if fs.hasSuper(g) {
						b++
					}
					c.metaBlocks(b, 1)
				}
			}
		}
		gr := &fs.groups[g]
		c.metaBlocks(gr.blockBitmap, 1)
		c.metaBlocks(gr.inodeBitmap, 1)
		c.metaBlocks(gr.inodeTable, fs.itb)
	}
	if fs.sb.FeatureIncompat&format.IncompatMMP != 0 && fs.sb.MMPBlock > fs.first && fs.sb.MMPBlock < fs.blocks {
		c.metaBlocks(fs.sb.MMPBlock, 1)
	}
}

// checkSpecialInodes marks the reserved inodes in use and walks those
// that own blocks (resize inode, journal, quota files, orphan file).
func (fs *FS) checkSpecialInodes(c *checker) {
	firstIno := uint32(format.FirstIno)
	if fs.sb.RevLevel > 0 {
		firstIno = fs.sb.FirstIno
	}
	visit := func(ino uint32) {
		if ino == 0 || ino > fs.inodes || getBit(c.inUse, uint64(ino-1)) && ino >= firstIno {
			return
		}
		in, err := fs.readInode(ino)
		if err != nil {
			c.addErr(err, "")
			return
		}
		setBit(c.inUse, uint64(ino-1))
		if in.mode == 0 && in.links == 0 && fs.iBlocks(in) == 0 {
			return // an unused reserved inode
		}
		c.visitInode(in, "", false)
	}
	for ino := uint32(1); ino < firstIno; ino++ {
		if ino == format.RootIno {
			continue
		}
		visit(ino)
	}
	sb := &fs.sb
	for _, ino := range []uint32{sb.JournalInum, sb.UsrQuotaInum, sb.GrpQuotaInum, sb.PrjQuotaInum, sb.OrphanFileInum} {
		if ino >= firstIno {
			visit(ino)
		}
	}
}

// checkTree walks every directory with the checker attached.
func (fs *FS) checkTree(ctx context.Context, c *checker) error {
	root, err := fs.readInode(format.RootIno)
	if err != nil {
		return err
	}
	c.visitInode(root, "", true)
	c.inodes[format.RootIno].names = 0
	if _, err := fs.xattrs(root, c); err != nil {
		c.addErr(err, "")
	}
	filetype := fs.sb.FeatureIncompat&format.IncompatFiletype != 0
	w := fs.newWalker(ctx, c)
	w.onEntry = func(parent *inode, name string, ino uint32, ftype uint8, in *inode, path string) {
		if filetype {
			if want := direntType(in.mode); ftype != want {
				c.add(fmt.Sprintf("directory inode %d", parent.ino), path, "entry file type %d, inode %d has mode %#o (want type %d)", ftype, ino, in.mode, want)
			}
		}
		u := c.inodes[ino]
		if u == nil {
			c.visitInode(in, path, true)
			u = c.inodes[ino]
		}
		u.names++
		if in.isDir() {
			if p := c.inodes[parent.ino]; p != nil {
				p.subdirs++
			}
		}
	}
	return w.walk()
}

func direntType(mode uint16) uint8 {
	switch mode & format.ModeTypeMask {
	case format.ModeRegular:
		return format.FtRegular
	case format.ModeDir:
		return format.FtDir
	case format.ModeChar:
		return format.FtChar
	case format.ModeBlock:
		return format.FtBlock
	case format.ModeFifo:
		return format.FtFifo
	case format.ModeSocket:
		return format.FtSocket
	case format.ModeSymlink:
		return format.FtSymlink
	}
	return format.FtUnknown
}

// checkLinks compares link counts with the names found.
func (fs *FS) checkLinks(c *checker) {
	dirNlink := fs.sb.FeatureRoCompat&format.RoCompatDirNlink != 0
	for ino, u := range c.inodes {
		want := u.names
		if u.dir {
			want = 2 + u.subdirs
			if ino != format.RootIno && u.names != 1 {
				continue // reported as a loop by the walk
			}
			if dirNlink && u.links == 1 && want >= format.LinkMax {
				continue
			}
		}
		if int(u.links) != want {
			c.add(fmt.Sprintf("inode %d", ino), u.path, "link count %d, found %d", u.links, want)
		}
	}
}

// checkBitmaps compares every group's bitmaps with what is in use, and
// the free counts with the bitmaps. A device can have tens of thousands
// of groups: ctx is checked at each.
func (fs *FS) checkBitmaps(ctx context.Context, c *checker) error {
	var freeBlocks, freeInodes uint64
	buf := make([]byte, fs.bs)
	for g := uint32(0); g < fs.ngroups; g++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		gr := &fs.groups[g]
		freeBlocks += uint64(gr.freeBlocks)
		freeInodes += uint64(gr.freeInodes)
		if !fs.checkBlockBitmap(c, g, buf) || !fs.checkInodeBitmap(c, g, buf) {
			continue
		}
		if gr.usedDirs != c.dirsInG[g] {
			c.add(fmt.Sprintf("group %d descriptor", g), "", "used directories count %d, found %d", gr.usedDirs, c.dirsInG[g])
		}
	}
	sbFree := uint64(fs.sb.FreeBlocksCountLo)
	if fs.is64 {
		sbFree |= uint64(fs.sb.FreeBlocksCountHi) << 32
	}
	if sbFree != freeBlocks {
		c.add("superblock", "", "free blocks count %d, groups have %d", sbFree, freeBlocks)
	}
	if uint64(fs.sb.FreeInodesCount) != freeInodes {
		c.add("superblock", "", "free inodes count %d, groups have %d", fs.sb.FreeInodesCount, freeInodes)
	}
	return nil
}

// uninitOK says whether group descriptors' uninit flags count: only
// checksummed descriptors can be trusted to set them.
func (fs *FS) uninitOK() bool { return fs.csum || fs.gdtCsum }

// bitmapCsumOK says whether the first bits of bitmap b match the checksum
// its group descriptor records (which keeps 16 bits of it in 32-byte
// descriptors).
func (fs *FS) bitmapCsumOK(b []byte, bits uint32, want uint32) bool {
	sum := format.Crc32c(fs.seed, b[:bits/8])
	if fs.dsize < 64 {
		sum &= 0xFFFF
	}
	return sum == want
}

// checkBlockBitmap compares group g's block bitmap and free count with
// the blocks the walk found in use. It reports false when the bitmap
// cannot be read, which ends the group's checks.
func (fs *FS) checkBlockBitmap(c *checker, g uint32, buf []byte) bool {
	gr := &fs.groups[g]
	start, n := fs.groupStart(g), fs.groupBlocks(g)
	s := fmt.Sprintf("group %d block bitmap", g)
	var disk func(i uint64) bool
	if fs.uninitOK() && gr.flags&format.BGBlockUninit != 0 {
		disk = func(i uint64) bool { return getBit(c.meta, start+i) }
	} else if err := fs.readBlock(buf, gr.blockBitmap); err != nil {
		c.add(s, "", "%v", err)
		return false
	} else {
		if fs.csum && !fs.bitmapCsumOK(buf, fs.bpg, gr.blockBitmapCsum) {
			c.add(s, "", "checksum mismatch")
		}
		bm := append([]byte(nil), buf...)
		disk = func(i uint64) bool { return bm[i/8]&(1<<(i%8)) != 0 }
	}
	var setCount uint64
	reported := 0
	for i := uint64(0); i < n; i++ {
		d, u := disk(i), getBit(c.used, start+i)
		if d {
			setCount++
		}
		if d != u {
			reported++
			if reported <= maxBitmapFindings {
				if u {
					c.add(s, "", "block %d is in use but marked free", start+i)
				} else {
					c.add(s, "", "block %d is marked in use but nothing uses it", start+i)
				}
			}
		}
	}
	if reported > maxBitmapFindings {
		c.add(s, "", "%d more blocks differ", reported-maxBitmapFindings)
	}
	if free := n - setCount; free != uint64(gr.freeBlocks) {
		c.add(fmt.Sprintf("group %d descriptor", g), "", "free blocks count %d, bitmap has %d free", gr.freeBlocks, free)
	}
	return true
}

// checkInodeBitmap compares group g's inode bitmap and free count with
// the inodes the walk reached. It reports false when the bitmap cannot be
// read, which ends the group's checks.
func (fs *FS) checkInodeBitmap(c *checker, g uint32, buf []byte) bool {
	gr := &fs.groups[g]
	uninitOK := fs.uninitOK()
	s := fmt.Sprintf("group %d inode bitmap", g)
	var ibm []byte
	if !(uninitOK && gr.flags&format.BGInodeUninit != 0) {
		if err := fs.readBlock(buf, gr.inodeBitmap); err != nil {
			c.add(s, "", "%v", err)
			return false
		}
		if fs.csum && !fs.bitmapCsumOK(buf, fs.ipg, gr.inodeBitmapCsum) {
			c.add(s, "", "checksum mismatch")
		}
		ibm = buf
	}
	var setCount uint64
	reported := 0
	base := uint64(g) * uint64(fs.ipg)
	for i := uint64(0); i < uint64(fs.ipg); i++ {
		d := ibm != nil && ibm[i/8]&(1<<(i%8)) != 0
		u := getBit(c.inUse, base+i)
		if d {
			setCount++
		}
		if u && uninitOK && i >= uint64(fs.ipg-gr.itableUnused) {
			c.add(fmt.Sprintf("inode %d", base+i+1), c.pathOf(uint32(base+i+1)), "in use but in the group's unused inode table range")
		}
		if d != u {
			reported++
			if reported <= maxBitmapFindings {
				if u {
					c.add(s, c.pathOf(uint32(base+i+1)), "inode %d is in use but marked free", base+i+1)
				} else {
					c.add(s, "", "inode %d is marked in use but not reachable", base+i+1)
				}
			}
		}
	}
	if reported > maxBitmapFindings {
		c.add(s, "", "%d more inodes differ", reported-maxBitmapFindings)
	}
	if free := uint64(fs.ipg) - setCount; free != uint64(gr.freeInodes) {
		c.add(fmt.Sprintf("group %d descriptor", g), "", "free inodes count %d, bitmap has %d free", gr.freeInodes, free)
	}
	return true
}
