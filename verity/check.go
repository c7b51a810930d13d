package verity

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Compute hashes the first dataBlocks blocks of r. Where r is a file with
// holes, the holes are hashed as zeros without being read, so a sparse
// image costs what its content costs.
func Compute(ctx context.Context, r io.ReaderAt, dataBlocks int64, salt []byte) (*Tree, Params, error) {
	t, err := New(salt)
	if err != nil {
		return nil, Params{}, err
	}
	end := dataBlocks * BlockSize
	f, _ := r.(*os.File)
	buf := make([]byte, 1<<20)
	for off := int64(0); off < end; {
		if err := ctx.Err(); err != nil {
			return nil, Params{}, err
		}
		if f != nil {
			// Blocks up to the next data are a hole. SEEK_DATA fails
			// (ENXIO) past the last data, and everywhere on file systems
			// and devices without holes, where all is read.
			data, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
			switch {
			case errors.Is(err, unix.ENXIO):
				if fi, serr := f.Stat(); serr == nil && fi.Mode().IsRegular() {
					data = end
				} else {
					data = off
				}
			case err != nil:
				data = off
			}
			data = min(data, end) &^ (BlockSize - 1)
			if data > off {
				t.WriteZeros(data - off)
				off = data
				continue
			}
		}
		k := min(int64(len(buf)), end-off)
		if f != nil {
			// Read up to the next hole only, so the loop finds it.
			if h, err := unix.Seek(int(f.Fd()), off, unix.SEEK_HOLE); err == nil && h > off {
				k = min(k, max((h-off)&^(BlockSize-1), BlockSize))
			}
		}
		n, err := r.ReadAt(buf[:k], off)
		if n < int(k) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, Params{}, fmt.Errorf("data block %d: %w", (off+int64(n))/BlockSize, err)
		}
		t.Write(buf[:k])
		off += k
	}
	p, err := t.Finish()
	return t, p, err
}

// Check verifies the data of r against want: it recomputes the root hash
// from the data and, when want.HashOffset is set, compares the
// superblock and every block of the stored tree with the recomputed one.
// size is r's length in bytes. Errors name what failed and wrap
// ErrMismatch when the bytes differ.
func Check(ctx context.Context, r io.ReaderAt, size int64, want Params) (Params, error) {
	if want.Algorithm != Algorithm || want.DataBlockSize != BlockSize || want.HashBlockSize != BlockSize {
		return Params{}, fmt.Errorf("dm-verity parameters %s, %d/%d byte blocks: olimage reads only %s with %d byte blocks",
			want.Algorithm, want.DataBlockSize, want.HashBlockSize, Algorithm, BlockSize)
	}
	salt, err := hex.DecodeString(want.Salt)
	if err != nil {
		return Params{}, fmt.Errorf("dm-verity salt %q: not hex", want.Salt)
	}
	if want.DataBlocks < 2 || want.DataBlocks*BlockSize > size {
		return Params{}, fmt.Errorf("dm-verity data: %d blocks of %d bytes, the image has %d bytes: %w", want.DataBlocks, BlockSize, size, ErrMismatch)
	}
	t, got, err := Compute(ctx, r, want.DataBlocks, salt)
	if err != nil {
		return Params{}, err
	}
	got.HashOffset = want.HashOffset
	if got.RootHash != want.RootHash {
		return got, fmt.Errorf("dm-verity root hash of the data is %s, expected %s: %w", got.RootHash, want.RootHash, ErrMismatch)
	}
	if want.HashOffset == 0 {
		return got, nil
	}
	if want.HashOffset < want.DataBlocks*BlockSize || want.HashOffset%BlockSize != 0 {
		return got, fmt.Errorf("dm-verity hash offset %d: want a multiple of %d at or after the data's end (%d): %w", want.HashOffset, BlockSize, want.DataBlocks*BlockSize, ErrMismatch)
	}
	need := TreeSize(want.DataBlocks)
	if size < want.HashOffset+need {
		return got, fmt.Errorf("dm-verity hash tree at byte %d: truncated: the image ends at %d, the tree needs %d bytes to %d: %w",
			want.HashOffset, size, need, want.HashOffset+need, ErrMismatch)
	}
	sb := make([]byte, sbSize)
	if _, err := r.ReadAt(sb, want.HashOffset); err != nil {
		return got, fmt.Errorf("dm-verity superblock at byte %d: %w", want.HashOffset, err)
	}
	if _, err := ParseSuperblock(sb); err != nil {
		return got, fmt.Errorf("dm-verity %s at byte %d: %w", err, want.HashOffset, ErrMismatch)
	}
	c := &comparer{r: r, off: want.HashOffset, start: want.HashOffset, buf: make([]byte, 1<<20)}
	if _, err := t.WriteTo(c); err != nil {
		return got, err
	}
	return got, nil
}

// comparer is a writer that compares what is written with r from off on.
type comparer struct {
	r          io.ReaderAt
	off, start int64
	buf        []byte
}

func (c *comparer) Write(p []byte) (int, error) {
	for done := 0; done < len(p); {
		k := min(len(p)-done, len(c.buf))
		n, err := c.r.ReadAt(c.buf[:k], c.off)
		if n < k {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, fmt.Errorf("dm-verity hash tree at byte %d: %w", c.off+int64(n), err)
		}
		if !bytes.Equal(c.buf[:k], p[done:done+k]) {
			i := 0
			for c.buf[i] == p[done+i] {
				i++
			}
			at := c.off + int64(i)
			what := fmt.Sprintf("hash block %d", (at-c.start)/BlockSize-1)
			if at-c.start < BlockSize {
				what = "superblock"
			}
			return done, fmt.Errorf("dm-verity %s at byte %d differs from the one the data gives: %w", what, at, ErrMismatch)
		}
		done += k
		c.off += int64(k)
	}
	return len(p), nil
}
