// Package par runs independent jobs on a fixed number of goroutines.
package par

import (
	"sync"
	"sync/atomic"
)

// Each calls fn(w, k) for every k from 0 to n-1 on at most workers
// goroutines, w being the number of the goroutine that runs it (0 to
// workers-1), for state of its own such as a buffer. Jobs are handed out
// in order of k. Once stop, if not nil, reports true, no more jobs start.
// Each returns when every started job has.
func Each(n, workers int, stop func() bool, fn func(w, k int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for stop == nil || !stop() {
				k := int(next.Add(1) - 1)
				if k >= n {
					return
				}
				fn(w, k)
			}
		}()
	}
	wg.Wait()
}

// Queue runs fn on jobs as they are added, on at most workers goroutines:
// Each for work whose jobs are found as it goes (a directory walk, a
// stream read in order). w is the number of the goroutine that runs a
// job (0 to workers-1), for state of its own such as a buffer. Jobs start
// in the order they were added. Once stop, if not nil, reports true, the
// jobs still queued are dropped rather than run.
type Queue[T any] struct {
	jobs chan T
	wg   sync.WaitGroup
}

// NewQueue starts the workers of a Queue. Up to pending jobs wait for a
// free goroutine; beyond that Add blocks, which bounds what is in memory.
func NewQueue[T any](workers, pending int, stop func() bool, fn func(w int, job T)) *Queue[T] {
	q := &Queue[T]{jobs: make(chan T, pending)}
	for w := range max(workers, 1) {
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			for job := range q.jobs {
				if stop == nil || !stop() {
					fn(w, job)
				}
			}
		}()
	}
	return q
}

// Add queues job, waiting while pending jobs fill the queue.
func (q *Queue[T]) Add(job T) { q.jobs <- job }

// Wait returns once every added job has run or been dropped; nothing may
// be added after.
func (q *Queue[T]) Wait() {
	close(q.jobs)
	q.wg.Wait()
}

// Beside starts fn on a goroutine of its own, for one job that runs
// beside the caller's (two sides of a comparison, a check beside a
// write). The returned wait blocks until fn has returned and gives its
// error; call it exactly once.
func Beside(fn func() error) (wait func() error) {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	return func() error { return <-done }
}

// Encode serialises items 0 to n-1 on workers goroutines and hands the
// bytes to out in order of item, for a stream (a digest, a document) of a
// large tree that is written once but costs more to encode than to write.
// enc appends item k's bytes to b; what out receives is what enc would
// give called on every item in order, batch items to a call of out. out
// runs on the caller's goroutine, beside the encoding of the next
// batches, and must not keep b.
func Encode(n, batch, workers int, enc func(b []byte, k int) []byte, out func(b []byte)) {
	workers, batch = max(workers, 1), max(batch, 1)
	batches := (n + batch - 1) / batch
	// Batches go round a ring of buffers, twice as many as workers: a
	// worker fills batch k's slot once out is done with batch k-slots,
	// and out takes the slots in order as they fill. No step waits for
	// the slowest worker (a thread the system has put aside holds up
	// only the batches behind its own).
	slots := 2 * workers
	bufs := make([][]byte, slots)
	turn := make([]int, slots) // the batch slot s holds next
	full := make([]bool, slots)
	for s := range turn {
		turn[s] = s
	}
	var mu sync.Mutex
	changed := sync.NewCond(&mu)
	encoded := Beside(func() error {
		Each(batches, workers, nil, func(_, k int) {
			s := k % slots
			mu.Lock()
			for turn[s] != k {
				changed.Wait()
			}
			b := bufs[s][:0]
			mu.Unlock()
			for i := k * batch; i < min((k+1)*batch, n); i++ {
				b = enc(b, i)
			}
			mu.Lock()
			bufs[s], full[s] = b, true
			changed.Broadcast()
			mu.Unlock()
		})
		return nil
	})
	for k := range batches {
		s := k % slots
		mu.Lock()
		for !full[s] || turn[s] != k {
			changed.Wait()
		}
		b := bufs[s]
		mu.Unlock()
		out(b)
		mu.Lock()
		full[s], turn[s] = false, k+slots
		changed.Broadcast()
		mu.Unlock()
	}
	encoded()
}
