package ext4

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/tree"
)

// Directories are planned on every core; the image is the one a single
// core plans, whatever order the directories were planned in.
func TestPlanDirsOnEveryCore(t *testing.T) {
	entries := func(t testing.TB) []*tree.Entry {
		es := sampleTree(t).Entries
		for d := range 12 {
			// Some linear directories, some htrees of a few leaves.
			es = append(es, manyFiles(fmt.Sprintf("d%02d", d), 40+d*37, 20)(t)...)
		}
		return es
	}
	o := testOptions()
	write := func(procs int) (string, [32]byte) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		img, _ := writeImage(t, newTree(t, entries(t)...), o)
		return img, sha(t, img)
	}
	img, one := write(1)
	for _, procs := range []int{2, 4, 8} {
		if _, got := write(procs); got != one {
			t.Fatalf("GOMAXPROCS %d: image sha256 %x, want %x as on one core", procs, got, one)
		}
	}
	testenv.Fsck(t, img)
}
