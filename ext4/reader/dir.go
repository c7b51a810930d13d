package reader

import (
	"errors"
	"fmt"

	"github.com/internetarchive/olimage/ext4/format"
)

// dirFormatError is a malformed entry found by parseDirBlock, as opposed
// to an error returned by its callback.
type dirFormatError struct{ msg string }

func (e *dirFormatError) Error() string { return e.msg }

func dirErr(f string, args ...any) error { return &dirFormatError{fmt.Sprintf(f, args...)} }

// parseDirBlock parses the linear directory entries filling b (a whole
// directory block, or the inline area of an inode) and calls fn for each
// entry in use. It checks every rec_len and name_len against the block.
func parseDirBlock(b []byte, bigBlocks bool, fn func(ino uint32, name []byte, ftype uint8) error) error {
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return dirErr("entry at byte %d: %d bytes left, too few for an entry", off, len(b)-off)
		}
		e := b[off:]
		ino := le.Uint32(e)
		recLen := int(le.Uint16(e[4:]))
		if bigBlocks && (recLen == 0xFFFF || recLen == 0) {
			recLen = 1 << 16 // 64 KiB blocks store 65536 as 65535 or 0
		}
		nameLen := int(e[6])
		switch {
		case recLen < 8 || recLen%4 != 0:
			return dirErr("entry at byte %d: bad rec_len %d", off, recLen)
		case recLen > len(e):
			return dirErr("entry at byte %d: rec_len %d runs past the end of the block (%d bytes left)", off, recLen, len(e))
		case ino != 0 && 8+nameLen > recLen:
			return dirErr("entry at byte %d: name_len %d beyond rec_len %d", off, nameLen, recLen)
		}
		if ino != 0 {
			if nameLen == 0 {
				return dirErr("entry at byte %d: empty name for inode %d", off, ino)
			}
			if err := fn(ino, e[8:8+nameLen], e[7]); err != nil {
				return err
			}
		}
		off += recLen
	}
	return nil
}

// dirBlockKind tells leaf blocks from htree index blocks.
type dirBlockKind int

const (
	dirLeaf dirBlockKind = iota
	dirDxRoot
	dirDxNode
)

// classifyDirBlock says whether logical block lblk of a directory is an
// htree index block. Index blocks hide their contents from linear readers
// (inside the ".." entry of the root, or in one empty entry spanning the
// block), so parsing them as leaves is safe; the kind matters for
// checksums.
func classifyDirBlock(b []byte, lblk uint64, htree bool) dirBlockKind {
	if !htree || len(b) < 12 {
		return dirLeaf
	}
	if lblk == 0 {
		return dirDxRoot
	}
	if le.Uint32(b) == 0 && int(le.Uint16(b[4:])) == len(b) || (len(b) == 1<<16 && le.Uint32(b) == 0 && le.Uint16(b[4:]) == 0xFFFF) {
		return dirDxNode
	}
	return dirLeaf
}

// dirBudget bounds the directory bytes one walk reads, so directories
// sharing blocks cannot multiply the work.
type dirBudget struct{ left int64 }

func (b *dirBudget) spend(n int64) error {
	if b == nil {
		return nil
	}
	if n > b.left {
		return fmt.Errorf("directories hold more bytes than the image (shared directory blocks?)")
	}
	b.left -= n
	return nil
}

// readDir calls fn for every entry of directory in, "." and ".." included,
// in on-disk order.
func (fs *FS) readDir(in *inode, budget *dirBudget, ck *checker, fn func(ino uint32, name []byte, ftype uint8) error) error {
	if !in.isDir() {
		return inodeCorrupt(in.ino, "not a directory")
	}
	if in.inline() {
		return fs.readInlineDir(in, budget, fn)
	}
	ext, err := fs.fileExtents(in, ck)
	if err != nil {
		return err
	}
	big := fs.bs >= 1<<16
	const run = 32 // blocks per read
	buf := make([]byte, min(int64(run), int64(fs.dirBlocks(ext)))*fs.bs)
	for _, e := range ext {
		if e.uninit {
			continue
		}
		if e.logical*uint64(fs.bs) >= in.size {
			break // blocks past i_size are preallocated, not part of the directory
		}
		for done := uint64(0); done < e.n; {
			n := min(e.n-done, run)
			if err := budget.spend(int64(n) * fs.bs); err != nil {
				return inodeCorrupt(in.ino, "%v", err)
			}
			chunk := buf[:int64(n)*fs.bs]
			if err := fs.readBlock(chunk, e.phys+done); err != nil {
				return inodeCorrupt(in.ino, "directory block %d: %v", e.logical+done, err)
			}
			for k := uint64(0); k < n; k++ {
				lblk := e.logical + done + k
				if lblk*uint64(fs.bs) >= in.size {
					break
				}
				b := chunk[int64(k)*fs.bs : int64(k+1)*fs.bs]
				kind := classifyDirBlock(b, lblk, in.htree())
				if ck != nil {
					ck.dirBlock(in, lblk, b, kind)
				}
				if err := parseDirBlock(b, big, fn); err != nil {
					var de *dirFormatError
					if errors.As(err, &de) {
						return &CorruptError{Structure: fmt.Sprintf("directory inode %d block %d", in.ino, lblk), Inode: in.ino, Msg: err.Error()}
					}
					return err
				}
			}
			done += n
		}
	}
	return nil
}

func (fs *FS) dirBlocks(ext []extent) uint64 {
	var n uint64
	for _, e := range ext {
		n += e.n
	}
	return max(n, 1)
}

// readInlineDir reads a directory stored in its inode: the parent's inode
// number in the first 4 bytes of i_block, entries in the other 56 bytes
// and in the system.data xattr.
func (fs *FS) readInlineDir(in *inode, budget *dirBudget, fn func(ino uint32, name []byte, ftype uint8) error) error {
	if err := budget.spend(int64(len(in.raw))); err != nil {
		return inodeCorrupt(in.ino, "%v", err)
	}
	if err := fn(in.ino, []byte("."), format.FtDir); err != nil {
		return err
	}
	if err := fn(le.Uint32(in.block), []byte(".."), format.FtDir); err != nil {
		return err
	}
	if err := parseDirBlock(in.block[4:], false, fn); err != nil {
		var de *dirFormatError
		if errors.As(err, &de) {
			return inodeCorrupt(in.ino, "inline directory: %v", err)
		}
		return err
	}
	rest, err := fs.inlineXattr(in)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		if err := parseDirBlock(rest, false, fn); err != nil {
			var de *dirFormatError
			if errors.As(err, &de) {
				return inodeCorrupt(in.ino, "inline directory (system.data): %v", err)
			}
			return err
		}
	}
	return nil
}
