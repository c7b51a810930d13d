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
