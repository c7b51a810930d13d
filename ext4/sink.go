package ext4

import (
	"bytes"
	"io"
)

// sinkBuf is how much output the sink gathers before writing it.
const sinkBuf = 1 << 20

// sink buffers the image stream and, when the writer can skip (Skipper or
// a working io.Seeker), turns all-zero blocks into skips so a raw image
// file stays sparse. It keeps the first error and does nothing after it.
type sink struct {
	w      io.Writer
	skip   func(int64) error // nil: zeros are written
	seeker bool              // skip is a Seek; the last byte must be written to set the length
	buf    []byte
	zeros  int64 // skipped bytes not yet passed to skip
	total  int64
	err    error
}

func newSink(w io.Writer) *sink {
	s := &sink{w: w, buf: make([]byte, 0, sinkBuf)}
	if sk, ok := w.(Skipper); ok {
		s.skip = sk.Skip
	} else if ws, ok := w.(io.Seeker); ok {
		if _, err := ws.Seek(0, io.SeekCurrent); err == nil { // pipes and terminals fail here
			s.skip = func(n int64) error { _, err := ws.Seek(n, io.SeekCurrent); return err }
			s.seeker = true
		}
	}
	return s
}

// space returns free buffer space for at least one and at most
// ceil(n/BlockSize) blocks; the caller fills it and calls commit.
func (s *sink) space(n int) []byte {
	if cap(s.buf)-len(s.buf) < BlockSize {
		s.flush()
	}
	n = min((n+BlockSize-1)&^(BlockSize-1), cap(s.buf)-len(s.buf))
	return s.buf[len(s.buf) : len(s.buf)+n]
}

// commit appends the first n bytes of the last space.
func (s *sink) commit(n int) {
	s.buf = s.buf[:len(s.buf)+n]
	s.total += int64(n)
}

// block returns the next block of output for the caller to fill entirely.
func (s *sink) block() []byte {
	b := s.space(BlockSize)
	s.commit(BlockSize)
	return b
}

// zero emits n zero bytes.
func (s *sink) zero(n int64) {
	if s.skip == nil {
		for n > 0 {
			b := s.space(int(min(n, sinkBuf)))
			k := min(int64(len(b)), n)
			clear(b[:k])
			s.commit(int(k))
			n -= k
		}
		return
	}
	s.flush()
	s.zeros += n
	s.total += n
}

// write passes b on, first skipping pending zeros.
func (s *sink) write(b []byte) {
	if s.err != nil || len(b) == 0 {
		return
	}
	if s.zeros > 0 {
		if s.err = s.skip(s.zeros); s.err != nil {
			return
		}
		s.zeros = 0
	}
	_, s.err = s.w.Write(b)
}

// flush writes the buffer, turning zero blocks into skips when it can.
func (s *sink) flush() {
	b := s.buf
	s.buf = s.buf[:0]
	if s.skip == nil {
		s.write(b)
		return
	}
	for len(b) > 0 {
		i := 0
		for i+BlockSize <= len(b) && !bytes.Equal(b[i:i+BlockSize], zeroBlock[:]) {
			i += BlockSize
		}
		if i == 0 && len(b) < BlockSize {
			i = len(b)
		}
		s.write(b[:i])
		b = b[i:]
		j := 0
		for j+BlockSize <= len(b) && bytes.Equal(b[j:j+BlockSize], zeroBlock[:]) {
			j += BlockSize
		}
		s.zeros += int64(j)
		b = b[j:]
	}
}

// finish flushes everything and sets the output's length.
func (s *sink) finish() error {
	s.flush()
	if s.err == nil && s.zeros > 0 {
		if s.seeker {
			// Seeking past the end does not grow a file; writing its last byte does.
			s.zeros--
			s.write([]byte{0})
		} else {
			s.err = s.skip(s.zeros)
			s.zeros = 0
		}
	}
	return s.err
}
