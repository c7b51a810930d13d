package ext4

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/tree"
)

// dataOf reads c and lists its non-zero blocks, as a tree reader would.
func dataOf(t testing.TB, c tree.Content) []tree.BlockRun {
	t.Helper()
	r, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var runs []tree.BlockRun
	for i := 0; i < len(b); i += BlockSize {
		if string(b[i:min(i+BlockSize, len(b))]) == string(zeroBlock[:min(BlockSize, len(b)-i)]) {
			continue
		}
		n := uint32(i / BlockSize)
		if k := len(runs); k > 0 && runs[k-1].Start+runs[k-1].Count == n {
			runs[k-1].Count++
		} else {
			runs = append(runs, tree.BlockRun{Start: n, Count: 1})
		}
	}
	return runs
}

func sparseFile(t testing.TB) *tree.Entry {
	return file(t, "holes", 0o644, &genContent{size: 3<<20 + 123, zeros: [][2]int64{{0, 1 << 20}, {1<<20 + 8192, 2<<20 + 17}, {3 << 20, 3<<20 + 100}}})
}

// A tree that lists its data blocks gives the image Plan would make by
// reading the content itself.
func TestSparseFromData(t *testing.T) {
	o := testOptions()
	scanned, _ := writeImage(t, newTree(t, sparseFile(t)), o)
	e := sparseFile(t)
	runs := dataOf(t, e.Content)
	if len(runs) < 2 {
		t.Fatalf("test content has data runs %v, want several", runs)
	}
	// Runs split where they touch are the same runs.
	split := []tree.BlockRun{}
	for _, r := range runs {
		if r.Count > 1 {
			split = append(split, tree.BlockRun{Start: r.Start, Count: 1}, tree.BlockRun{Start: r.Start + 1, Count: r.Count - 1})
		} else {
			split = append(split, r)
		}
	}
	for name, data := range map[string][]tree.BlockRun{"merged": runs, "split": split} {
		e.SetData(data, true)
		listed, _ := writeImage(t, newTree(t, e), o)
		if sha(t, listed) != sha(t, scanned) {
			t.Errorf("%s: image from the listed data blocks differs from the scanned one", name)
		}
	}
	testenv.Fsck(t, scanned)
}

// Data that says a block is zero when it is not fails the write, as a
// file that changed after planning does.
func TestSparseDataWrong(t *testing.T) {
	e := sparseFile(t)
	e.SetData(dataOf(t, e.Content)[1:], true) // the first data run becomes a hole
	l, err := Plan(newTree(t, e), testOptions())
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	if _, err := l.WriteTo(io.Discard); !errors.Is(err, ErrContentChanged) || !strings.HasPrefix(err.Error(), "holes: ") {
		t.Fatalf("WriteTo: got %v, want a content-changed error for holes", err)
	}
}

func TestSparseDataInvalid(t *testing.T) {
	for name, data := range map[string][]tree.BlockRun{
		"past the end": {{Start: 700, Count: 200}},
		"out of order": {{Start: 500, Count: 1}, {Start: 300, Count: 1}},
		"overlapping":  {{Start: 10, Count: 10}, {Start: 15, Count: 10}},
		"empty run":    {{Start: 10, Count: 0}},
		"wrapping":     {{Start: 10, Count: 1<<32 - 5}},
	} {
		e := sparseFile(t)
		e.SetData(data, true)
		if _, err := Plan(newTree(t, e), testOptions()); err == nil || !strings.HasPrefix(err.Error(), "holes: data blocks") {
			t.Errorf("%s: Plan: got %v, want an error naming holes' data blocks", name, err)
		}
	}
}

// Files with no data blocks (empty, or all holes) are checked while the
// image is written like any other: content that appeared since fails it.
func TestBlocklessChanged(t *testing.T) {
	zeros := make([]byte, 128<<10)
	changed := append(bytes.Clone(zeros[:len(zeros)-4]), "data"...)
	for name, e := range map[string]*tree.Entry{
		"empty": file(t, "f", 0o644, memContent("")),
		"holes": file(t, "f", 0o644, memContent(zeros)),
	} {
		t.Run(name, func(t *testing.T) {
			// The tree was read when the file was all zeros (no data
			// blocks); by the time the image is written it is not.
			e.SetData(nil, true)
			e.Content = memContent("now with data")
			if e.Size > 0 {
				e.Content = memContent(changed)
			}
			l, err := Plan(newTree(t, e), testOptions())
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			_, err = l.WriteTo(io.Discard)
			if !errors.Is(err, ErrContentChanged) || !strings.HasPrefix(err.Error(), "f: ") {
				t.Fatalf("WriteTo: got %v, want a content-changed error for f", err)
			}
		})
	}
}
