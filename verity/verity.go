// Package verity computes and checks dm-verity hash trees in the format
// veritysetup(8) reads: hash type 1, SHA-256, 4096-byte data and hash
// blocks, a salt, and a superblock in front of the tree. Runs of zero
// blocks and all-zero subtrees hash to precomputed digests, so a tree
// costs what the content costs, not what the declared size does. It does
// not open devices (the kernel and veritysetup do) and knows nothing of
// ext4 or images.
package verity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// The parameters olimage uses, and the only ones it reads back.
const (
	BlockSize  = 4096     // data and hash block size
	Algorithm  = "sha256" // veritysetup --hash
	digestSize = sha256.Size
	perBlock   = BlockSize / digestSize // digests in one hash block: 128
	maxLevels  = 63                     // as veritysetup: VERITY_MAX_LEVELS
	hashType   = 1                      // veritysetup --format=1: salt first, digests padded to a power of two
	sbVersion  = 1                      // superblock version
)

// Params describe a hash tree: what veritysetup needs to open or verify
// a volume, and what a sidecar records.
type Params struct {
	RootHash      string `json:"root_hash"`
	Salt          string `json:"salt"` // hex
	Algorithm     string `json:"algorithm"`
	DataBlockSize int    `json:"data_block_size"`
	HashBlockSize int    `json:"hash_block_size"`
	DataBlocks    int64  `json:"data_blocks"`
	// HashOffset is the byte offset of the superblock that precedes the
	// tree in the image file, or 0 when the tree was not written.
	HashOffset int64 `json:"hash_offset,omitempty"`
}

// ErrMismatch marks a tree, root hash or superblock that does not match
// the data or the expected parameters.
var ErrMismatch = errors.New("dm-verity mismatch")

// segment is a run of hash blocks of one level: either explicit bytes (a
// multiple of BlockSize) or zeros blocks that each hash a full all-zero
// subtree.
type segment struct {
	data  []byte
	zeros int64
}

// level is one level of the tree, in block order.
type level struct {
	segs []segment
	n    int64 // blocks
}

func (l *level) addBlock(b []byte) {
	if k := len(l.segs); k > 0 && l.segs[k-1].data != nil {
		l.segs[k-1].data = append(l.segs[k-1].data, b...)
	} else {
		l.segs = append(l.segs, segment{data: append(make([]byte, 0, 16*BlockSize), b...)})
	}
	l.n++
}

func (l *level) addZeros(n int64) {
	if n == 0 {
		return
	}
	if k := len(l.segs); k > 0 && l.segs[k-1].data == nil {
		l.segs[k-1].zeros += n
	} else {
		l.segs = append(l.segs, segment{zeros: n})
	}
	l.n += n
}

// acc gathers the digests of one level's children into its hash blocks.
type acc struct {
	out     level
	cur     [BlockSize]byte
	k       int  // digests in cur
	allZero bool // every digest in cur is that of a zero child
	zero    []byte
}

func newAcc(zero []byte) *acc { return &acc{allZero: true, zero: zero} }

func (a *acc) add(d []byte, zero bool) {
	copy(a.cur[a.k*digestSize:], d)
	a.k++
	a.allZero = a.allZero && zero
	if a.k == perBlock {
		a.flush()
	}
}

func (a *acc) flush() {
	if a.k == 0 {
		return
	}
	if a.k == perBlock && a.allZero {
		a.out.addZeros(1)
	} else {
		a.out.addBlock(a.cur[:])
	}
	a.cur = [BlockSize]byte{}
	a.k, a.allZero = 0, true
}

// zeros adds n zero children: whole hash blocks of them in one step.
func (a *acc) zeros(n int64) {
	for ; n > 0 && a.k != 0; n-- {
		a.add(a.zero, true)
	}
	full := n / perBlock
	a.out.addZeros(full)
	for n -= full * perBlock; n > 0; n-- {
		a.add(a.zero, true)
	}
}

// Tree computes the hash tree of data written to it in order. It is an
// io.Writer; WriteZeros takes runs of zeros without their bytes.
type Tree struct {
	salt    []byte
	h       hash.Hash
	sum     []byte
	zdig    [maxLevels + 2][]byte // zdig[i]: digest of an all-zero subtree of height i (0: a data block)
	leaves  *acc
	pend    []byte // a partial data block
	blocks  int64
	levels  []level
	root    []byte
	zblocks [][]byte // zblocks[i]: a level-i hash block of zero children, once finished
}

// New returns a Tree that hashes with salt (at most 256 bytes).
func New(salt []byte) (*Tree, error) {
	if len(salt) > 256 {
		return nil, fmt.Errorf("verity: salt of %d bytes: at most 256", len(salt))
	}
	t := &Tree{salt: append([]byte(nil), salt...), h: sha256.New(), sum: make([]byte, 0, digestSize)}
	var zero [BlockSize]byte
	t.zdig[0] = t.digest(zero[:])
	var blk [BlockSize]byte
	for i := 1; i < len(t.zdig); i++ {
		for j := 0; j < perBlock; j++ {
			copy(blk[j*digestSize:], t.zdig[i-1])
		}
		t.zdig[i] = t.digest(blk[:])
	}
	t.leaves = newAcc(t.zdig[0])
	return t, nil
}

// digest is H(salt || b), a new slice.
func (t *Tree) digest(b []byte) []byte {
	t.h.Reset()
	t.h.Write(t.salt)
	t.h.Write(b)
	return t.h.Sum(nil)
}

var zeroBlock [BlockSize]byte

func (t *Tree) block(b []byte) {
	t.blocks++
	if bytes.Equal(b, zeroBlock[:]) {
		t.leaves.add(t.zdig[0], true)
		return
	}
	t.h.Reset()
	t.h.Write(t.salt)
	t.h.Write(b)
	t.leaves.add(t.h.Sum(t.sum[:0]), false)
}

// Write hashes p as the next bytes of data.
func (t *Tree) Write(p []byte) (int, error) {
	if t.root != nil {
		return 0, errors.New("verity: write after Finish")
	}
	n := len(p)
	if len(t.pend) > 0 {
		k := min(BlockSize-len(t.pend), len(p))
		t.pend = append(t.pend, p[:k]...)
		p = p[k:]
		if len(t.pend) < BlockSize {
			return n, nil
		}
		t.block(t.pend)
		t.pend = t.pend[:0]
	}
	for len(p) >= BlockSize {
		t.block(p[:BlockSize])
		p = p[BlockSize:]
	}
	if len(p) > 0 {
		t.pend = append(t.pend[:0], p...)
	}
	return n, nil
}

// WriteZeros hashes n zero bytes as the next bytes of data, in time that
// does not grow with n beyond the last partial hash blocks.
func (t *Tree) WriteZeros(n int64) {
	if len(t.pend) > 0 {
		k := min(int64(BlockSize-len(t.pend)), n)
		t.Write(zeroBlock[:k])
		n -= k
	}
	blocks := n / BlockSize
	t.blocks += blocks
	t.leaves.zeros(blocks)
	if r := n % BlockSize; r > 0 {
		t.Write(zeroBlock[:r])
	}
}

// Finish computes the upper levels and returns the tree's parameters
// (HashOffset 0). The data must be a whole number of blocks, at least two
// (veritysetup's tree of one block has no hash block at all).
func (t *Tree) Finish() (Params, error) {
	if t.root == nil {
		if len(t.pend) > 0 {
			return Params{}, fmt.Errorf("verity: data of %d bytes is not a multiple of %d", t.blocks*BlockSize+int64(len(t.pend)), BlockSize)
		}
		if t.blocks < 2 {
			return Params{}, fmt.Errorf("verity: data of %d blocks: want 2 or more", t.blocks)
		}
		t.leaves.flush()
		t.levels = []level{t.leaves.out}
		for t.levels[len(t.levels)-1].n > 1 {
			below := t.levels[len(t.levels)-1]
			a := newAcc(t.zdig[len(t.levels)])
			for _, s := range below.segs {
				if s.data == nil {
					a.zeros(s.zeros)
					continue
				}
				for b := s.data; len(b) > 0; b = b[BlockSize:] {
					a.add(t.digest(b[:BlockSize]), false)
				}
			}
			a.flush()
			t.levels = append(t.levels, a.out)
		}
		top := t.levels[len(t.levels)-1].segs[0]
		if top.data == nil {
			t.root = t.zdig[len(t.levels)]
		} else {
			t.root = t.digest(top.data)
		}
		t.zblocks = make([][]byte, len(t.levels))
		for i := range t.zblocks {
			b := make([]byte, BlockSize)
			for j := 0; j < perBlock; j++ {
				copy(b[j*digestSize:], t.zdig[i])
			}
			t.zblocks[i] = b
		}
	}
	return Params{
		RootHash: hex.EncodeToString(t.root), Salt: hex.EncodeToString(t.salt), Algorithm: Algorithm,
		DataBlockSize: BlockSize, HashBlockSize: BlockSize, DataBlocks: t.blocks,
	}, nil
}

// TreeSize is the bytes the superblock and tree take, for data of the
// given number of blocks; the tree is the same size whatever the data.
func TreeSize(dataBlocks int64) int64 {
	n := int64(1) // the superblock's block
	for b := dataBlocks; ; {
		b = (b + perBlock - 1) / perBlock
		n += b
		if b <= 1 {
			break
		}
	}
	return n * BlockSize
}

// WriteTo writes the superblock and the tree, top level first, as
// veritysetup format does after the superblock. Call Finish first.
func (t *Tree) WriteTo(w io.Writer) (int64, error) {
	if t.root == nil {
		return 0, errors.New("verity: WriteTo before Finish")
	}
	var total int64
	put := func(b []byte) error {
		n, err := w.Write(b)
		total += int64(n)
		return err
	}
	if err := put(t.superblock()); err != nil {
		return total, err
	}
	rep := make([]byte, 64*BlockSize)
	for i := len(t.levels) - 1; i >= 0; i-- {
		for j := 0; j < len(rep); j += BlockSize {
			copy(rep[j:], t.zblocks[i])
		}
		for _, s := range t.levels[i].segs {
			if s.data != nil {
				if err := put(s.data); err != nil {
					return total, err
				}
				continue
			}
			for left := s.zeros * BlockSize; left > 0; {
				k := min(left, int64(len(rep)))
				if err := put(rep[:k]); err != nil {
					return total, err
				}
				left -= k
			}
		}
	}
	return total, nil
}

// Superblock layout (cryptsetup's struct verity_sb), little-endian, in
// the first 512 bytes of a hash block of its own.
const (
	sbSignature = "verity\x00\x00"
	sbSize      = 512
	offVersion  = 8
	offHashType = 12
	offUUID     = 16
	offAlg      = 32
	offDataBS   = 64
	offHashBS   = 68
	offBlocks   = 72
	offSaltSize = 80
	offSalt     = 88
)

// superblock returns the superblock's hash block. Its UUID derives from
// the root hash so that the same data gives the same bytes.
func (t *Tree) superblock() []byte {
	b := make([]byte, BlockSize)
	copy(b, sbSignature)
	binary.LittleEndian.PutUint32(b[offVersion:], sbVersion)
	binary.LittleEndian.PutUint32(b[offHashType:], hashType)
	u := sha256.Sum256(append([]byte("olimage verity uuid\x00"), t.root...))
	u[6] = u[6]&0x0f | 0x50 // RFC 9562 version 5 (name-based) ...
	u[8] = u[8]&0x3f | 0x80 // ... and variant
	copy(b[offUUID:], u[:16])
	copy(b[offAlg:], Algorithm)
	binary.LittleEndian.PutUint32(b[offDataBS:], BlockSize)
	binary.LittleEndian.PutUint32(b[offHashBS:], BlockSize)
	binary.LittleEndian.PutUint64(b[offBlocks:], uint64(t.blocks))
	binary.LittleEndian.PutUint16(b[offSaltSize:], uint16(len(t.salt)))
	copy(b[offSalt:], t.salt)
	return b
}

// ReadParams reads the superblock at byte at of r and returns the tree's
// parameters, all but the root hash, which a superblock does not hold.
func ReadParams(r io.ReaderAt, at int64) (*Params, error) {
	b := make([]byte, sbSize)
	if _, err := r.ReadAt(b, at); err != nil {
		return nil, fmt.Errorf("superblock at byte %d: %w", at, err)
	}
	sb, err := ParseSuperblock(b)
	if err != nil {
		return nil, err
	}
	return &Params{Salt: hex.EncodeToString(sb.Salt), Algorithm: sb.Algorithm, DataBlockSize: sb.DataBlockSize,
		HashBlockSize: sb.HashBlockSize, DataBlocks: sb.DataBlocks, HashOffset: at}, nil
}

// Superblock is what a superblock says.
type Superblock struct {
	Algorithm     string
	DataBlockSize int
	HashBlockSize int
	DataBlocks    int64
	Salt          []byte
}

// ParseSuperblock reads a superblock from the first 512 bytes of b. It
// accepts only what olimage writes: version 1, hash type 1, SHA-256, 4096
// byte blocks.
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) < sbSize {
		return nil, fmt.Errorf("superblock: %d bytes, want %d", len(b), sbSize)
	}
	if string(b[:8]) != sbSignature {
		return nil, fmt.Errorf("superblock: no \"verity\" signature")
	}
	if v := binary.LittleEndian.Uint32(b[offVersion:]); v != sbVersion {
		return nil, fmt.Errorf("superblock: version %d, want %d", v, sbVersion)
	}
	if v := binary.LittleEndian.Uint32(b[offHashType:]); v != hashType {
		return nil, fmt.Errorf("superblock: hash type %d, want %d", v, hashType)
	}
	alg := string(bytes.TrimRight(b[offAlg:offAlg+32], "\x00"))
	if alg != Algorithm {
		return nil, fmt.Errorf("superblock: algorithm %q, want %s", alg, Algorithm)
	}
	sb := &Superblock{
		Algorithm:     alg,
		DataBlockSize: int(binary.LittleEndian.Uint32(b[offDataBS:])),
		HashBlockSize: int(binary.LittleEndian.Uint32(b[offHashBS:])),
		DataBlocks:    int64(binary.LittleEndian.Uint64(b[offBlocks:])),
	}
	if sb.DataBlockSize != BlockSize || sb.HashBlockSize != BlockSize {
		return nil, fmt.Errorf("superblock: block sizes %d/%d, want %d", sb.DataBlockSize, sb.HashBlockSize, BlockSize)
	}
	if sb.DataBlocks < 2 || sb.DataBlocks > 1<<50 {
		return nil, fmt.Errorf("superblock: %d data blocks out of range", sb.DataBlocks)
	}
	n := int(binary.LittleEndian.Uint16(b[offSaltSize:]))
	if n > 256 {
		return nil, fmt.Errorf("superblock: salt of %d bytes, at most 256", n)
	}
	sb.Salt = append([]byte(nil), b[offSalt:offSalt+n]...)
	return sb, nil
}
