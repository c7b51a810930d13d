package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"
)

// asyncHash computes the image's sha256 on its own goroutine, so hashing
// overlaps with producing and writing the image instead of adding to it:
// on large images the digest is a third of the work.
type asyncHash struct {
	jobs chan hashJob
	free chan []byte
	done chan struct{}
	h    hash.Hash
	once sync.Once
}

type hashJob struct {
	b     []byte // data to hash, returned to free afterwards
	zeros int64  // or a run of zeros
}

const hashBufs, hashBufSize = 8, 1 << 20

func newAsyncHash() *asyncHash {
	a := &asyncHash{
		jobs: make(chan hashJob, hashBufs),
		free: make(chan []byte, hashBufs),
		done: make(chan struct{}),
		h:    sha256.New(),
	}
	for i := 0; i < hashBufs; i++ {
		a.free <- make([]byte, 0, hashBufSize)
	}
	go a.run()
	return a
}

func (a *asyncHash) run() {
	defer close(a.done)
	zero := make([]byte, hashBufSize)
	for j := range a.jobs {
		if j.b != nil {
			a.h.Write(j.b)
			a.free <- j.b[:0]
		}
		for left := j.zeros; left > 0; {
			k := min(left, int64(len(zero)))
			a.h.Write(zero[:k])
			left -= k
		}
	}
}

// Write queues a copy of p; p may be reused as soon as it returns.
func (a *asyncHash) Write(p []byte) {
	for len(p) > 0 {
		b := <-a.free
		n := min(len(p), cap(b))
		a.jobs <- hashJob{b: append(b, p[:n]...)}
		p = p[n:]
	}
}

// Zeros queues n zero bytes.
func (a *asyncHash) Zeros(n int64) { a.jobs <- hashJob{zeros: n} }

// Close stops the goroutine; it is safe to call more than once.
func (a *asyncHash) Close() {
	a.once.Do(func() { close(a.jobs) })
	<-a.done
}

// Sum waits for everything queued and returns the hex digest.
func (a *asyncHash) Sum() string {
	a.Close()
	return hex.EncodeToString(a.h.Sum(nil))
}
