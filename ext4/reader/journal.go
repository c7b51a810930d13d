package reader

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/internetarchive/olimage/ext4/format"
)

// JBD2 superblock block types: v1 and v2.
const (
	journalSuperblockV1 = 3
	journalSuperblockV2 = format.JournalSuperblockV2
)

// journalDirty says whether the journal holds transactions to replay.
// The superblock's needs_recovery flag alone does not: the kernel sets it
// for as long as the file system is mounted read-write, and a journal
// with nothing logged since that mount is clean. The journal's own
// superblock says: its log starts at s_start, and 0 means it is empty.
func (fs *FS) journalDirty() (bool, error) {
	sb := &fs.sb
	if sb.FeatureIncompat&format.IncompatRecover == 0 {
		return false, nil
	}
	if sb.FeatureCompat&format.CompatHasJournal == 0 || sb.JournalInum == 0 {
		return true, nil // an external journal: olimage cannot look at it
	}
	in, err := fs.readInode(sb.JournalInum)
	if err != nil {
		return false, fmt.Errorf("inode %d: %w", sb.JournalInum, err)
	}
	r, err := fs.openInode(in)
	if err != nil {
		return false, fmt.Errorf("inode %d: %w", sb.JournalInum, err)
	}
	var b [format.JournalSuperblockSize]byte
	if _, err := r.ReadAt(b[:], 0); err != nil && err != io.EOF {
		return false, fmt.Errorf("inode %d: superblock: %w", sb.JournalInum, err)
	}
	var j format.JournalSuperblock
	if _, err := binary.Decode(b[:], binary.BigEndian, &j); err != nil {
		return false, fmt.Errorf("inode %d: superblock: %w", sb.JournalInum, err)
	}
	if j.Header.Magic != format.JournalMagic || (j.Header.BlockType != journalSuperblockV1 && j.Header.BlockType != journalSuperblockV2) {
		return false, fmt.Errorf("inode %d: no JBD2 superblock (magic %#x, block type %d)", sb.JournalInum, j.Header.Magic, j.Header.BlockType)
	}
	return j.Start != 0, nil
}
