package overlays

import (
	"bytes"
	"context"
	"crypto/sha256"
	"hash"
	"hash/crc32"
	"io"

	"github.com/internetarchive/olimage/policy"
	"github.com/internetarchive/olimage/tree"
)

// contentSums is what one pass over a content finds: everything a tree
// entry records of it, so that nothing reads it again before the image is
// written.
type contentSums struct {
	size    int64
	digest  tree.Digest
	check   uint32 // CRC-32C
	data    []tree.BlockRun
	hasData bool
}

// set records the sums in e.
func (c contentSums) set(e *tree.Entry) {
	e.Size, e.Digest = c.size, c.digest
	e.Check, e.HasCheck = c.check, true
	e.SetData(c.data, c.hasData)
}

// hashFile reads the source file fc, of fc.size bytes when it was
// listed, once, as hashScan does. It reads at most one byte more than
// fc.size, so that a file that has grown since is caught by the caller's
// size check without hashing all it has become.
func hashFile(ctx context.Context, fc fileContent, buf []byte, sc *policy.Scanner) (contentSums, []policy.Hit, error) {
	f, err := fc.open()
	if err != nil {
		return contentSums{}, nil, err
	}
	defer f.Close()
	// It stops once ctx is done: a file can take minutes to read.
	return hashScan(tree.ContextReader(ctx, io.LimitReader(f, fc.size+1)), fc.size, buf, sc)
}

// hashScan reads r, of size bytes, once: its sums, and what the content
// policy's detector finds in it, which looks at no more than its first
// policy.ScanLimit bytes. buf holds at least that many, or one byte more
// than size, so that those bytes are scanned as they lie in buf and the
// policy need not read the content again. (Content longer than size, and
// than buf, is hashed to its end, unscanned beyond buf: its caller
// refuses it for its changed size.)
func hashScan(r io.Reader, size int64, buf []byte, sc *policy.Scanner) (contentSums, []policy.Hit, error) {
	sum := newSums(size)
	lim := min(len(buf), policy.ScanLimit)
	k, err := io.ReadFull(r, buf[:lim])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return contentSums{}, nil, err
	}
	sum.Write(buf[:k])
	hits, err := sc.ScanBytes(buf[:k])
	if err != nil {
		return contentSums{}, nil, err
	}
	if k == lim {
		if _, err := io.CopyBuffer(sum, struct{ io.Reader }{r}, buf); err != nil {
			return contentSums{}, nil, err
		}
	}
	return sum.sums(), hits, nil
}

// hashReader reads r, of size bytes, once; buf may be nil.
func hashReader(r io.Reader, size int64, buf []byte) (contentSums, error) {
	sum := newSums(size)
	// Hide any WriterTo (strings.Reader has one, for inline content): use
	// buf, which callers reuse across files.
	if _, err := io.CopyBuffer(sum, struct{ io.Reader }{r}, buf); err != nil {
		return contentSums{}, err
	}
	return sum.sums(), nil
}

// sums computes, in one pass, a content's SHA-256 digest, its CRC-32C
// check and, for content large enough to have holes, which of its blocks
// hold anything but zeros.
type sums struct {
	h       hash.Hash
	crc     uint32
	size    int64
	scan    bool // look for zero blocks
	nonzero bool // the block being read so far has a non-zero byte
	data    []tree.BlockRun
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var zeros [tree.SparseBlock]byte

// newSums starts sums of content expected to be size bytes. Smaller
// content than tree.SparseMin is stored dense, so its blocks are not
// looked at: most files of a tree are.
func newSums(size int64) *sums {
	// Files of ext4's maximum size (16 TiB) have block numbers that fit
	// in 32 bits; larger ones are not looked at and fail later anyway.
	return &sums{h: sha256.New(), scan: size >= tree.SparseMin && size <= 1<<44}
}

// reset starts s over for content expected to be size bytes, as newSums
// would, without a new hash: the spool sums every member with one.
func (s *sums) reset(size int64) {
	s.h.Reset()
	*s = sums{h: s.h, scan: size >= tree.SparseMin && size <= 1<<44}
}

func (s *sums) Write(p []byte) (int, error) {
	s.h.Write(p)
	s.crc = crc32.Update(s.crc, castagnoli, p)
	n := len(p)
	if !s.scan {
		s.size += int64(n)
		return n, nil
	}
	for len(p) > 0 {
		k := min(len(p), tree.SparseBlock-int(s.size%tree.SparseBlock))
		// Comparing stops at the first non-zero byte, so on ordinary
		// content this costs next to nothing.
		if !s.nonzero && !bytes.Equal(p[:k], zeros[:k]) {
			s.nonzero = true
		}
		s.size += int64(k)
		p = p[k:]
		if s.size%tree.SparseBlock == 0 {
			s.endBlock()
		}
	}
	return n, nil
}

// endBlock records the block that ends at s.size.
func (s *sums) endBlock() {
	if s.nonzero {
		b := uint32((s.size - 1) / tree.SparseBlock)
		if k := len(s.data); k > 0 && s.data[k-1].Start+s.data[k-1].Count == b {
			s.data[k-1].Count++
		} else {
			s.data = append(s.data, tree.BlockRun{Start: b, Count: 1})
		}
	}
	s.nonzero = false
}

func (s *sums) sums() contentSums {
	c := contentSums{size: s.size, check: s.crc}
	s.h.Sum(c.digest[:0])
	if s.scan {
		if s.size%tree.SparseBlock != 0 {
			s.endBlock()
		}
		c.data, c.hasData = s.data, true
	}
	return c
}
