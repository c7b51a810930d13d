package ext4

import (
	"bytes"
	"io"
	"sync"
)

// Output is gathered in buffers of sinkBuf bytes; while the writer fills
// one, a goroutine writes the others out, so reading and hashing content
// overlaps with writing the image. With a digest, another goroutine hashes
// each buffer before it is written. The buffers together stay small enough
// to be hashed from the processor's caches: SHA-256 of data that has gone
// out to memory runs at two thirds of the speed.
const (
	sinkBuf  = 1 << 20
	sinkBufs = 6
)

// zeroRun is zeros to hash runs of zeros from, small enough to stay in a
// processor cache.
var zeroRun [64 << 10]byte

// sinkJob is a filled buffer, then a run of zero bytes, to write in order.
type sinkJob struct {
	buf   []byte
	zeros int64
}

// sink is the writer's end of DESIGN's "block stream": it buffers the
// image's blocks, hashes them and hands them in order to the io.Writer
// WriteTo was given. That io.Writer is the sink of DESIGN's data flow (the
// image file, its compressor or stdout; builder's stream), not this type.
// When the output can skip (Skipper or a working io.Seeker), all-zero
// blocks become skips so a raw image file stays sparse. It keeps the first
// error and does nothing after it.
type sink struct {
	w      io.Writer
	skip   func(int64) error // nil: zeros are written
	seeker bool              // skip is a Seek; the last byte must be written to set the length
	buf    []byte
	total  int64

	free   chan []byte
	jobs   chan sinkJob // filled buffers, to hash (or, with no hash, to write)
	hashed chan sinkJob // hashed buffers, to write
	done   chan struct{}
	h      io.Writer // nil: no digest

	mu  sync.Mutex
	err error

	zeros int64 // owned by the output goroutine until done
}

// newSink starts writing to w and, unless h is nil, hashing every byte of
// the image into h, zeros included.
func newSink(w io.Writer, h io.Writer) *sink {
	s := &sink{w: w, h: h, free: make(chan []byte, sinkBufs), jobs: make(chan sinkJob, sinkBufs), done: make(chan struct{})}
	s.hashed = s.jobs
	if h != nil {
		s.hashed = make(chan sinkJob, sinkBufs)
		go s.hash()
	}
	if sk, ok := w.(Skipper); ok {
		s.skip = sk.Skip
	} else if ws, ok := w.(io.Seeker); ok {
		if _, err := ws.Seek(0, io.SeekCurrent); err == nil { // pipes and terminals fail here
			s.skip = func(n int64) error { _, err := ws.Seek(n, io.SeekCurrent); return err }
			s.seeker = true
		}
	}
	for range sinkBufs - 1 {
		s.free <- make([]byte, 0, sinkBuf)
	}
	s.buf = make([]byte, 0, sinkBuf)
	go s.output()
	return s
}

// failed returns the output error, if any.
func (s *sink) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *sink) setErr(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// hash feeds jobs to h in order and passes them on to output.
func (s *sink) hash() {
	defer close(s.hashed)
	for j := range s.jobs {
		s.h.Write(j.buf)
		if zw, ok := s.h.(ZeroWriter); ok {
			zw.WriteZeros(j.zeros)
			s.hashed <- j
			continue
		}
		for left := j.zeros; left > 0; {
			k := min(left, int64(len(zeroRun)))
			s.h.Write(zeroRun[:k])
			left -= k
		}
		s.hashed <- j
	}
}

// output writes jobs in order until there are no more.
func (s *sink) output() {
	defer close(s.done)
	for j := range s.hashed {
		if s.failed() == nil {
			s.writeBuf(j.buf)
			s.zeros += j.zeros
		}
		if j.buf != nil {
			s.free <- j.buf[:0]
		}
	}
}

// space returns free buffer space for at least one and at most
// ceil(n/BlockSize) blocks; the caller fills it and calls commit.
func (s *sink) space(n int) []byte {
	if cap(s.buf)-len(s.buf) < BlockSize {
		s.flush(0)
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
	s.total += n
	s.flush(n)
}

// flush hands the buffer and then zeros bytes of zeros to the output
// goroutine, and takes a free buffer.
func (s *sink) flush(zeros int64) {
	if len(s.buf) == 0 && zeros == 0 {
		return
	}
	j := sinkJob{zeros: zeros}
	if len(s.buf) > 0 {
		j.buf = s.buf
		s.buf = <-s.free
	}
	s.jobs <- j
}

// put writes b, first skipping pending zeros (output goroutine only).
func (s *sink) put(b []byte) {
	if len(b) == 0 || s.failed() != nil {
		return
	}
	if s.zeros > 0 {
		if err := s.skip(s.zeros); err != nil {
			s.setErr(err)
			return
		}
		s.zeros = 0
	}
	if _, err := s.w.Write(b); err != nil {
		s.setErr(err)
	}
}

// writeBuf writes b, turning zero blocks into skips when it can.
func (s *sink) writeBuf(b []byte) {
	if s.skip == nil {
		s.put(b)
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
		s.put(b[:i])
		b = b[i:]
		j := 0
		for j+BlockSize <= len(b) && bytes.Equal(b[j:j+BlockSize], zeroBlock[:]) {
			j += BlockSize
		}
		s.zeros += int64(j)
		b = b[j:]
	}
}

// close stops the output goroutine; with finish false it only waits, for
// a write that failed elsewhere.
func (s *sink) close(finish bool) error {
	s.flush(0)
	close(s.jobs)
	<-s.done
	if !finish {
		return s.failed()
	}
	if s.failed() == nil && s.zeros > 0 {
		if s.seeker {
			// Seeking past the end does not grow a file; writing its last byte does.
			s.zeros--
			s.put([]byte{0})
		} else if err := s.skip(s.zeros); err != nil {
			s.setErr(err)
		}
	}
	return s.failed()
}
