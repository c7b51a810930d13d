package format

import "hash/crc32"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Crc32c continues the raw crc32c that ext4 uses for metadata_csum (the
// kernel's crc32c_le: no inversion before or after) from seed over b.
// hash/crc32 inverts on the way in and out, so the seed and result are
// inverted around it.
func Crc32c(seed uint32, b []byte) uint32 {
	return ^crc32.Update(^seed, castagnoli, b)
}

// InodeCsumSeed is the seed for checksums of an inode and of the blocks
// that belong to it (extent tree, directory blocks): crc32c of the inode
// number and generation, from the file system seed.
func InodeCsumSeed(csumSeed, ino, generation uint32) uint32 {
	var b [4]byte
	le.PutUint32(b[:], ino)
	c := Crc32c(csumSeed, b[:])
	le.PutUint32(b[:], generation)
	return Crc32c(c, b[:])
}
