// Package image opens image files for reading as one random-access file
// system: a raw ext4 image, the same compressed with zstd or gzip, a GPT
// disk holding one ext4 partition, or either inside a qcow2 image. It finds the bytes; it does not
// interpret ext4 (package ext4/reader does). It also replaces an image
// file and its sidecar as one pair, for builds and for the reads that find
// a replacement a killed build left unfinished.
package image

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/internetarchive/olimage/ext4/format"
	"github.com/internetarchive/olimage/internal/trace"
	"github.com/internetarchive/olimage/qcow2"
)

// Format is how an image file holds the volume. One set of words for
// builds (--compress, the output name), sidecars ("compression") and
// reads (inspect's "format").
type Format string

// Formats of an image file.
const (
	Raw  Format = "raw"  // the file system itself, sparse
	Zstd Format = "zstd" // the raw image, zstd-compressed
	Gzip Format = "gzip" // the raw image, gzip-compressed; read, never built
	// GPT is a disk image: a GPT with one Linux file-system partition
	// holding the volume at 1 MiB. Builds write it; a read reports its
	// container (Raw, Zstd, ...) and the partition number instead.
	GPT Format = "gpt"
	// Qcow2 is the volume in a qcow2 image, zero clusters unallocated.
	Qcow2 Format = "qcow2"
)

// ErrNoFS is returned when a file holds no ext4 file system olimage can
// find: not raw ext4, not compressed ext4, not a GPT disk with one ext4
// partition.
var ErrNoFS = errors.New("no ext4 file system found")

// File is an opened image: a file system of Size bytes readable at any
// offset.
type File struct {
	Path      string
	Format    Format // Raw, Zstd, Gzip or Qcow2: how the file is stored
	Partition int    // GPT partition number, 0 for a bare file system
	Size      int64  // bytes of the file system
	r         io.ReaderAt
	off       int64
	f         *os.File
	tmp       *os.File

	read  atomic.Int64     // bytes read so far, for watch
	watch func(read int64) // see Watch
}

// Watch makes every later read call fn with the bytes read so far, for
// showing progress on long reads. Reads may run at once on several
// goroutines, and so may fn. Call it before reading starts.
func (f *File) Watch(fn func(read int64)) { f.watch = fn }

// ReadAt reads the file system's bytes.
func (f *File) ReadAt(p []byte, off int64) (n int, err error) {
	if f.watch != nil {
		defer func() { f.watch(f.read.Add(int64(n))) }()
	}
	if off >= f.Size {
		return 0, io.EOF
	}
	if max := f.Size - off; int64(len(p)) > max {
		n, err := f.r.ReadAt(p[:max], f.off+off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return f.r.ReadAt(p, f.off+off)
}

// Close releases the file and any decompressed copy.
func (f *File) Close() error {
	if f.tmp != nil {
		f.tmp.Close()
	}
	return f.f.Close()
}

// magicOffset is where an ext4 file system's magic is: s_magic, 56 bytes
// into the superblock.
const magicOffset = format.SuperblockOffset + 56

// Open opens the image at path, first finishing a replacement of it that
// an interrupted build left (see Settle); "-" is stdin. An image read from
// a pipe (stdin, a FIFO, bash's <(...)) is first copied to an unlinked
// temporary file: reading a file system needs random access.
func Open(path string) (*File, error) {
	return OpenContext(context.Background(), path)
}

// OpenContext is Open, telling ctx's trace.Reads how the decompression of
// a compressed image, which reads the whole file before anything else
// can be, goes on.
func OpenContext(ctx context.Context, path string) (*File, error) {
	var f *os.File
	var err error
	if path == "-" {
		f, err = spool(os.Stdin)
	} else {
		if err := Settle(path); err != nil {
			return nil, err
		}
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0 {
		t, err := spool(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		f = t
		if fi, err = f.Stat(); err != nil {
			f.Close()
			return nil, err
		}
	}
	img := &File{Path: path, Format: Raw, f: f, r: f}
	if fi.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s: is a directory, not an image", path)
	}
	img.Size = fi.Size()
	if fi.Mode()&os.ModeDevice != 0 {
		// A block device's size is not in its inode; seek to its end.
		if img.Size, err = f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: size: %w", path, err)
		}
	}
	var head [4]byte
	n, _ := f.ReadAt(head[:], 0)
	switch {
	case n >= 4 && bytes.Equal(head[:], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		img.Format = Zstd
	case n >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		img.Format = Gzip
	case qcow2.IsQcow2(head[:n]):
		q, err := qcow2.NewReader(f, img.Size)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		img.Format, img.r, img.Size = Qcow2, q, q.Size
	}
	if img.Format == Zstd || img.Format == Gzip {
		if err := img.decompress(ctx); err != nil {
			img.Close()
			return nil, fmt.Errorf("%s: %s: %w", path, img.Format, err)
		}
	}
	if isExt4(img.r, 0) {
		return img, nil
	}
	if err := img.findPartition(); err != nil {
		img.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

func isExt4(r io.ReaderAt, off int64) bool {
	var m [2]byte
	if n, _ := r.ReadAt(m[:], off+magicOffset); n != 2 {
		return false
	}
	return binary.LittleEndian.Uint16(m[:]) == format.SuperMagic
}

// spool copies r to an unlinked temporary file, leaving runs of zeros as
// holes, and returns that file.
func spool(r io.Reader) (*os.File, error) {
	tmp, err := os.CreateTemp("", "olimage-stdin-*")
	if err != nil {
		return nil, err
	}
	os.Remove(tmp.Name())
	buf := make([]byte, 1<<20)
	var size int64
	for {
		n, rerr := io.ReadFull(r, buf)
		for off := 0; off < n; off += 4096 {
			chunk := buf[off:min(off+4096, n)]
			if !allZero(chunk) {
				if _, err := tmp.WriteAt(chunk, size+int64(off)); err != nil {
					tmp.Close()
					return nil, err
				}
			}
		}
		size += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			tmp.Close()
			return nil, fmt.Errorf("reading: %w", rerr)
		}
	}
	if err := tmp.Truncate(size); err != nil {
		tmp.Close()
		return nil, err
	}
	return tmp, nil
}

// countingReader calls fn with the bytes read so far after each read.
type countingReader struct {
	r    io.Reader
	fn   func(read int64)
	read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	c.fn(c.read)
	return n, err
}

// decompress expands the image into an unlinked temporary file, leaving
// runs of zeros as holes so a mostly empty image costs little disk.
func (img *File) decompress(ctx context.Context) error {
	var src io.Reader = img.f
	if reads := trace.ReadsOf(ctx); reads != nil {
		if fi, err := img.f.Stat(); err == nil {
			if fn := reads(img.Path+" (decompressing)", fi.Size()); fn != nil {
				src = &countingReader{r: img.f, fn: fn}
			}
		}
	}
	var zr io.Reader
	switch img.Format {
	case Zstd:
		d, err := zstd.NewReader(src, zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return err
		}
		defer d.Close()
		zr = d
	case Gzip:
		d, err := gzip.NewReader(src)
		if err != nil {
			return err
		}
		defer d.Close()
		zr = d
	}
	tmp, err := os.CreateTemp("", "olimage-image-*")
	if err != nil {
		return err
	}
	os.Remove(tmp.Name())
	img.tmp = tmp
	buf := make([]byte, 1<<20)
	var size, limit int64
	for {
		// Fill the buffer; io.ReadFull would blur a truncated stream's
		// io.ErrUnexpectedEOF with a short last read.
		n := 0
		var err error
		for n < len(buf) && err == nil {
			var k int
			k, err = zr.Read(buf[n:])
			n += k
		}
		for off := 0; off < n; off += 4096 {
			chunk := buf[off:min(off+4096, n)]
			if !allZero(chunk) {
				if _, werr := tmp.WriteAt(chunk, size+int64(off)); werr != nil {
					return werr
				}
			}
		}
		if size == 0 && n >= 2048 {
			limit = fsBytes(buf[:n])
		}
		size += int64(n)
		if limit > 0 && size > limit+1<<20 {
			// A compressed stream that expands past the size its own
			// superblock gives is a bomb or a corruption, not an image.
			return fmt.Errorf("expands past the %d bytes its superblock gives; refusing to decompress further", limit)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := tmp.Truncate(size); err != nil {
		return err
	}
	img.r, img.Size = tmp, size
	return nil
}

// fsBytes is the size an ext4 superblock at the start of b gives its file
// system, or 0 when b does not start with one (a GPT disk, say).
func fsBytes(b []byte) int64 {
	sb, err := format.ParseSuperblock(b[format.SuperblockOffset:])
	if err != nil {
		return 0
	}
	return sb.Bytes()
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// findPartition looks for a GPT and, in it, the one ext4 partition.
func (img *File) findPartition() error {
	var sig [8]byte
	if n, _ := img.r.ReadAt(sig[:], 512); n != 8 || string(sig[:]) != "EFI PART" {
		return fmt.Errorf("%w (no ext4 superblock, and no GPT)", ErrNoFS)
	}
	table, err := gpt.Read(newReaderFile(img), 512, 512)
	if err != nil {
		return fmt.Errorf("GPT: %w", err)
	}
	var found []*gpt.Partition
	for _, p := range table.Partitions {
		if p.Start == 0 || p.Size == 0 {
			continue
		}
		start := int64(p.Start) * 512
		if start+int64(p.Size) > img.Size {
			return fmt.Errorf("GPT partition %d ends at byte %d, past the end of the disk (%d bytes)", p.Index, start+int64(p.Size), img.Size)
		}
		if isExt4(img.r, start) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return fmt.Errorf("%w: GPT disk with %d partitions, none ext4", ErrNoFS, len(table.Partitions))
	case 1:
		p := found[0]
		img.off, img.Size, img.Partition = int64(p.Start)*512, int64(p.Size), p.Index
		return nil
	}
	return fmt.Errorf("GPT disk with %d ext4 partitions; olimage reads disks with one", len(found))
}

// Map maps n bytes of the file system from offset off into memory, read
// only, so a large file inside the image can be read without copying it.
// The bytes are valid until the returned unmap is called; ok is false when
// the image cannot be mapped (then read it instead).
func (f *File) Map(off, n int64) (data []byte, unmap func() error, ok bool) {
	file := f.f
	if f.tmp != nil {
		file = f.tmp
	}
	if off < 0 || n <= 0 || off+n > f.Size || n > 1<<40 || f.Format == Qcow2 {
		return nil, nil, false // a qcow2 image's clusters are not in order
	}
	abs := f.off + off
	page := int64(os.Getpagesize())
	start := abs &^ (page - 1)
	m, err := syscall.Mmap(int(file.Fd()), start, int(abs-start+n), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, false
	}
	return m[abs-start:], func() error { return syscall.Munmap(m) }, true
}
