package overlays

import (
	"bytes"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/internetarchive/olimage/tree"
)

// spoolQueue spools and digests the small members of a compressed
// archive on a second goroutine while the first reads the next headers:
// a million one-byte members cost as much to hash and spool as to read.
// Members are spooled in archive order, as they were one by one, and the
// first error is the earliest member's.
type spoolQueue struct {
	a       *tarArchive
	cur     *spoolBatch
	batches chan *spoolBatch // to the spooling goroutine
	free    chan *spoolBatch // back from it, to be filled again
	idle    chan struct{}    // a token: the goroutine has spooled all it was sent
	err     error            // the first error spooling, read once idle
	failed  atomic.Bool      // err is set: stop reading
	done    chan struct{}
}

// spoolBatch is members' data read from the archive, in order.
type spoolBatch struct {
	data  []byte
	items []spoolItem
	sync  bool // a request to hand back the idle token once spooled
}

type spoolItem struct {
	e    *tree.Entry
	name string // the member's, for errors
	size int64  // what its header says; n is what the archive held
	n    int
}

const (
	maxQueued      = 64 << 10  // larger members are spooled as they are read
	spoolBatchData = 256 << 10 // a batch is sent once its data passes this
	spoolBatchLen  = 1024      // or it holds this many members
)

func newSpoolQueue(a *tarArchive) *spoolQueue {
	q := &spoolQueue{a: a, batches: make(chan *spoolBatch, 2), free: make(chan *spoolBatch, 3),
		idle: make(chan struct{}, 1), done: make(chan struct{})}
	for range 3 {
		q.free <- &spoolBatch{}
	}
	q.cur = <-q.free
	go q.run()
	return q
}

// add reads the data of the member name, of size bytes, from r into the
// current batch, in the reads spool.write would make, for e.
func (q *spoolQueue) add(r io.Reader, name string, size int64, e *tree.Entry) error {
	if q.failed.Load() {
		return q.wait()
	}
	b := q.cur
	start := len(b.data)
	b.data = append(b.data, make([]byte, size)...)
	k, err := io.ReadFull(r, b.data[start:])
	b.data = b.data[:start+k]
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		// A member cut short is no error here (the next header is), as in
		// spool.write; any other is.
		return fmt.Errorf("%s: entry %s: %w", q.a.name, shortName(name), err)
	}
	b.items = append(b.items, spoolItem{e: e, name: name, size: size, n: k})
	if len(b.data) >= spoolBatchData || len(b.items) >= spoolBatchLen {
		q.send()
	}
	return nil
}

func (q *spoolQueue) send() {
	q.batches <- q.cur
	q.cur = <-q.free
}

// wait returns once every member added so far is spooled, with the
// first error spooling them.
func (q *spoolQueue) wait() error {
	q.cur.sync = true
	q.send()
	<-q.idle
	return q.err
}

// close waits for the members added so far and ends the goroutine.
func (q *spoolQueue) close() error {
	err := q.wait()
	close(q.batches)
	<-q.done
	return err
}

func (q *spoolQueue) run() {
	defer close(q.done)
	var br bytes.Reader
	s := q.a.r.spool
	for b := range q.batches {
		off := 0
		for _, it := range b.items {
			if q.err != nil {
				break
			}
			br.Reset(b.data[off : off+it.n])
			off += it.n
			at, sm, err := s.write(&br, it.size)
			if err != nil {
				q.err = fmt.Errorf("%s: entry %s: %w", q.a.name, shortName(it.name), err)
				q.failed.Store(true)
				break
			}
			sm.set(it.e)
			it.e.Content = spoolContent{s, at, sm.size}
		}
		sync := b.sync
		clear(b.items) // drop the entries
		b.data, b.items, b.sync = b.data[:0], b.items[:0], false
		q.free <- b
		if sync {
			q.idle <- struct{}{}
		}
	}
}
