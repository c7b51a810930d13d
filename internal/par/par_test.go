package par

import (
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
