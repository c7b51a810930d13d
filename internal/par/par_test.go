package par

import (
	"bytes"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
)

func TestEachRunsEveryJobOnce(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{0, 4}, {1, 4}, {7, 2}, {1000, 8}, {5, 1}} {
		counts := make([]atomic.Int32, tc.n)
		var maxW atomic.Int32
		Each(tc.n, tc.workers, nil, func(w, k int) {
			counts[k].Add(1)
			for {
				m := maxW.Load()
				if int32(w) <= m || maxW.CompareAndSwap(m, int32(w)) {
					break
				}
			}
		})
		for k := range counts {
			if c := counts[k].Load(); c != 1 {
				t.Fatalf("n=%d workers=%d: job %d ran %d times", tc.n, tc.workers, k, c)
			}
		}
		if tc.n > 0 && int(maxW.Load()) >= tc.workers {
			t.Fatalf("n=%d workers=%d: worker number %d", tc.n, tc.workers, maxW.Load())
		}
	}
}

func TestEachStops(t *testing.T) {
	var ran atomic.Int32
	Each(1000, 1, func() bool { return ran.Load() >= 10 }, func(w, k int) { ran.Add(1) })
	if got := ran.Load(); got != 10 {
		t.Fatalf("ran %d jobs after stop said yes at 10, want 10", got)
	}
}

func TestQueueRunsEveryJobOnce(t *testing.T) {
	for _, tc := range []struct{ n, workers, pending int }{{0, 4, 0}, {1, 4, 0}, {7, 2, 1}, {1000, 8, 256}, {5, 1, 0}} {
		counts := make([]atomic.Int32, tc.n)
		var running, most, badW atomic.Int32
		q := NewQueue(tc.workers, tc.pending, nil, func(w, k int) {
			if w < 0 || w >= tc.workers {
				badW.Store(int32(w) + 1)
			}
			r := running.Add(1)
			for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
			}
			counts[k].Add(1)
			running.Add(-1)
		})
		for k := range tc.n {
			q.Add(k)
		}
		q.Wait()
		for k := range counts {
			if c := counts[k].Load(); c != 1 {
				t.Fatalf("n=%d workers=%d: job %d ran %d times", tc.n, tc.workers, k, c)
			}
		}
		if badW.Load() != 0 || int(most.Load()) > tc.workers {
			t.Fatalf("n=%d workers=%d: worker number %d, %d jobs at once", tc.n, tc.workers, badW.Load()-1, most.Load())
		}
	}
}

// One worker runs the jobs in the order they were added.
func TestQueueOrder(t *testing.T) {
	var got []int
	q := NewQueue(1, 3, nil, func(_, k int) { got = append(got, k) })
	for k := range 100 {
		q.Add(k)
	}
	q.Wait()
	for k, g := range got {
		if g != k {
			t.Fatalf("job %d ran as the %dth", g, k)
		}
	}
	if len(got) != 100 {
		t.Fatalf("%d jobs ran, want 100", len(got))
	}
}

// Once stop says yes, queued jobs are dropped, and Add and Wait still
// return.
func TestQueueStops(t *testing.T) {
	var ran atomic.Int32
	q := NewQueue(1, 0, func() bool { return ran.Load() >= 10 }, func(_, _ int) { ran.Add(1) })
	for k := range 1000 {
		q.Add(k)
	}
	q.Wait()
	if got := ran.Load(); got != 10 {
		t.Fatalf("ran %d jobs after stop said yes at 10, want 10", got)
	}
}

func TestBesideRunsConcurrently(t *testing.T) {
	// fn waits for the caller, so Beside returning before fn does is
	// what lets this finish; wait then gives fn's error.
	release := make(chan struct{})
	want := errors.New("side failed")
	wait := Beside(func() error { <-release; return want })
	close(release)
	if err := wait(); err != want {
		t.Fatalf("wait() = %v, want %v", err, want)
	}
	if err := Beside(func() error { return nil })(); err != nil {
		t.Fatalf("wait() = %v, want nil", err)
	}
}

// Encode's output is the items' bytes in order, as encoding them one
// after another gives, whatever the batch and the number of workers.
func TestEncodeInOrder(t *testing.T) {
	enc := func(b []byte, k int) []byte {
		if k%5 == 3 {
			return b // an item may add nothing
		}
		return append(strconv.AppendInt(b, int64(k), 10), " ;"[k%2])
	}
	for _, tc := range []struct{ n, batch, workers int }{{0, 4, 2}, {1, 4, 2}, {7, 1, 3}, {1000, 16, 2}, {5000, 1, 3}, {1000, 7, 8}, {5, 10, 1}, {100, 0, 0}} {
		var want []byte
		for k := range tc.n {
			want = enc(want, k)
		}
		var got []byte
		var outs, busy atomic.Int32
		Encode(tc.n, tc.batch, tc.workers, enc, func(b []byte) {
			if busy.Add(1) != 1 {
				t.Errorf("n=%d batch=%d workers=%d: out called while it runs", tc.n, tc.batch, tc.workers)
			}
			outs.Add(1)
			got = append(got, b...)
			busy.Add(-1)
		})
		if !bytes.Equal(got, want) {
			t.Fatalf("n=%d batch=%d workers=%d: got %q, want %q", tc.n, tc.batch, tc.workers, got, want)
		}
		if wantOuts := (tc.n + max(tc.batch, 1) - 1) / max(tc.batch, 1); int(outs.Load()) != wantOuts {
			t.Fatalf("n=%d batch=%d workers=%d: out called %d times, want one a batch, %d", tc.n, tc.batch, tc.workers, outs.Load(), wantOuts)
		}
	}
}
