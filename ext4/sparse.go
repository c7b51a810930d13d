package ext4

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/internetarchive/olimage/internal/par"

	"github.com/internetarchive/olimage/ext4/format"
	"github.com/internetarchive/olimage/tree"
)

// Entry.Data counts in ext4 blocks: neither array length may be negative.
var (
	_ [BlockSize - tree.SparseBlock]struct{}
	_ [tree.SparseBlock - BlockSize]struct{}
)

// zeroBlock is a block of zeros to compare and write from.
var zeroBlock [BlockSize]byte

// scanSparse keeps only the non-zero blocks of the files of at least
// SparseMin bytes in their runs; the zero blocks become holes. It takes
// them from the entry's Data where the tree lists them, and otherwise
// reads the file. WriteTo checks the holes are still zero (and the digest
// still matches), so a file that changes between Plan and WriteTo is an
// error, never a wrong image.
func (l *Layout) scanSparse() error {
	limit := l.opts.SparseMin
	if limit < 0 {
		return nil
	}
	if limit == 0 {
		limit = defaultSparseMin
	}
	var todo []*node
	for _, n := range l.nodes {
		if n == nil || n.entry == nil || n.ftype() != format.FtRegular || n.size() == 0 || int64(n.size()) < limit {
			continue
		}
		if _, ok := n.entry.Data(); ok {
			if err := fromData(n); err != nil {
				return err
			}
			continue
		}
		todo = append(todo, n)
	}
	if len(todo) == 0 {
		return nil
	}
	errs := make([]error, len(todo))
	workers := runtime.GOMAXPROCS(0)
	bufs := make([][]byte, workers)
	par.Each(len(todo), workers, nil, func(w, k int) {
		if bufs[w] == nil {
			bufs[w] = make([]byte, 1<<20)
		}
		errs[k] = scanNode(todo[k], bufs[w])
	})
	return errors.Join(errs...)
}

// fromData replaces n's runs with the non-zero blocks its entry lists,
// found when the tree was read.
func fromData(n *node) error {
	blocks := uint32((n.size() + BlockSize - 1) / BlockSize)
	data, _ := n.entry.Data()
	runs := make([]run, 0, len(data))
	var next uint32
	for _, r := range data {
		if r.Count == 0 || r.Start < next || r.Start+r.Count > blocks || r.Start+r.Count < r.Start {
			return fmt.Errorf("%s: data blocks %d+%d do not fit in order in a file of %d blocks", n.entry.Path(), r.Start, r.Count, blocks)
		}
		if k := len(runs); k > 0 && r.Start == next {
			runs[k-1].n += r.Count // the same runs scanNode would make
		} else {
			runs = append(runs, run{r.Start, r.Count})
		}
		next = r.Start + r.Count
	}
	n.setRuns(runs)
	return nil
}

// scanNode replaces n's runs with its non-zero blocks.
func scanNode(n *node, buf []byte) error {
	e := n.entry
	r, err := e.Content.Open()
	if err != nil {
		return fmt.Errorf("%s: %w", e.Path(), err)
	}
	defer r.Close()
	var runs []run
	var off uint64
	size := n.size()
	for {
		k, err := io.ReadFull(r, buf)
		for i := 0; i < k; i += BlockSize {
			b := buf[i:min(i+BlockSize, k)]
			if bytes.Equal(b, zeroBlock[:len(b)]) {
				continue
			}
			lblk := uint32((off + uint64(i)) / BlockSize)
			if m := len(runs); m > 0 && runs[m-1].lblk+runs[m-1].n == lblk {
				runs[m-1].n++
			} else {
				runs = append(runs, run{lblk, 1})
			}
		}
		off += uint64(k)
		if off > size {
			return fmt.Errorf("%s: content is longer than %d bytes: %w", e.Path(), size, ErrContentChanged)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path(), err)
		}
		if k%BlockSize != 0 {
			return fmt.Errorf("%s: short read in the middle of the content", e.Path())
		}
	}
	if off != size {
		return fmt.Errorf("%s: content is %d bytes, tree says %d: %w", e.Path(), off, size, ErrContentChanged)
	}
	n.setRuns(runs)
	return nil
}
