package ext4

import (
	"fmt"
	"testing"

	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/tree"
)

// layoutBytesPerEntry bounds the heap a Layout of one-byte files holds
// per entry beyond the tree: the inode plan, the pointer to it and the
// directory entry. It was about 210 bytes while every inode plan had its
// runs, extents and extent tree as slices of its own, and about 60 since
// a file of one extent keeps it inline.
const layoutBytesPerEntry = 100

// TestLayoutBytesPerEntry plans 20,000 one-byte files in 20 directories
// and checks what the Layout holds per entry. Run with -v for the figure.
func TestLayoutBytesPerEntry(t *testing.T) {
	one := memContent{'x'}
	_, digest := digestOf(t, one)
	es := []*tree.Entry{dir("opt", 0o755)}
	for d := range 20 {
		p := fmt.Sprintf("opt/d%04d", d)
		es = append(es, dir(p, 0o755))
		for i := range 1000 {
			es = append(es, (&tree.Entry{Type: tree.File, Mode: 0o644, Size: 1, Digest: digest, Content: one}).WithPath(fmt.Sprintf("%s/f%04d", p, i)))
		}
	}
	tr := newTree(t, es...)
	held, _ := testfs.HeapHeld(func() *Layout {
		l, err := Plan(tr, testOptions())
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
	got := float64(held) / float64(len(es))
	t.Logf("%d entries: %.0f bytes an entry of the layout", len(es), got)
	if got > layoutBytesPerEntry {
		t.Errorf("a layout of %d entries holds %.0f bytes an entry, want at most %d", len(es), got, layoutBytesPerEntry)
	}
}

// TestItemsOneAllocation: the list of what WriteTo writes is allocated
// once at its size; grown by appending, a million files' list was held
// twice over while it grew.
func TestItemsOneAllocation(t *testing.T) {
	es := []*tree.Entry{dir("opt", 0o755)}
	for i := range 200 {
		es = append(es, file(t, fmt.Sprintf("opt/f%03d", i), 0o644, memContent{byte(i)}))
	}
	l, err := Plan(newTree(t, es...), testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := testing.AllocsPerRun(5, func() { l.items() }); got != 1 {
		t.Errorf("items allocates %v times, want 1", got)
	}
}
