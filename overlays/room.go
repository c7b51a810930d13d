package overlays

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/internetarchive/olimage/policy"
)

// ErrNoRoom marks a compressed archive that would not fit in the
// directory its members are spooled to.
var ErrNoRoom = errors.New("not enough free space to spool the archive")

// archiveContent is a member of a plain tar archive: n bytes at off of
// the archive, which stays open until the reader closes.
type archiveContent struct {
	a      *plainArchive
	off, n int64
}

// plainArchive is a plain tar archive whose members are read in place.
type plainArchive struct {
	f *os.File
	// hits holds what the content policy's detector found in members as
	// they were hashed, by where their data starts; members without hits
	// are not in it.
	hits map[int64][]policy.Hit
}

func (c archiveContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(c.a.f, c.off, c.n)), nil
}

// PolicyHits returns what the content policy's detector found in c as
// it was hashed: every member of a plain archive is scanned then.
func (c archiveContent) PolicyHits() ([]policy.Hit, bool) { return c.a.hits[c.off], true }

// String names the archive, for errors about its content.
func (c archiveContent) String() string { return fmt.Sprintf("%s at byte %d", c.a.f.Name(), c.off) }

// reserve checks, before anything of archive name is spooled, that the
// spool's directory has room for about want more bytes: a full $TMPDIR
// found a gigabyte into an archive wastes the gigabyte, and its error
// would name neither the directory nor the way around it.
func (s *spool) reserve(name string, want int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return fmt.Errorf("%s: spool in %s: %w", name, s.dir, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if want > free {
		return fmt.Errorf("%s: spool in %s: the archive unpacks to about %s, and %s has %s free: %w",
			name, s.dir, roughBytes(want), s.dir, roughBytes(free), ErrNoRoom)
	}
	return nil
}

// roughBytes prints n in the largest binary unit that keeps it above 1.
func roughBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// unpackedSize estimates what the compressed archive f unpacks to, from
// what its format records: a zstd frame's content size, a gzip member's
// size modulo 4 GiB. Where it records nothing the archive's own size is
// the estimate, as a floor. f's offset is left alone.
func unpackedSize(f *os.File, kind string) int64 {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	packed := fi.Size()
	est := packed
	switch kind {
	case "gzip":
		var b [4]byte
		if packed >= 18 {
			if _, err := f.ReadAt(b[:], packed-4); err == nil {
				est = max(est, int64(binary.LittleEndian.Uint32(b[:])))
			}
		}
	case "zstd":
		var b [18]byte
		k, _ := f.ReadAt(b[:], 0)
		if n, ok := zstdContentSize(b[:k]); ok {
			est = max(est, n)
		}
	}
	return est
}

// zstdContentSize reads Frame_Content_Size from the frame header that
// starts h (RFC 8878, 3.1.1.1), if the frame records it.
func zstdContentSize(h []byte) (int64, bool) {
	if len(h) < 5 || binary.LittleEndian.Uint32(h) != 0xfd2fb528 {
		return 0, false
	}
	fhd := h[4]
	single := fhd&0x20 != 0
	i := 5
	if !single {
		i++ // Window_Descriptor
	}
	i += []int{0, 1, 2, 4}[fhd&3] // Dictionary_ID
	size := []int{0, 2, 4, 8}[fhd>>6]
	if fhd>>6 == 0 && single {
		size = 1
	}
	if size == 0 || len(h) < i+size {
		return 0, false
	}
	var v uint64
	for j := size - 1; j >= 0; j-- {
		v = v<<8 | uint64(h[i+j])
	}
	if size == 2 {
		v += 256
	}
	if v > 1<<62 {
		return 0, false
	}
	return int64(v), true
}
