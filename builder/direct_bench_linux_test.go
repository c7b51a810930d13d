package builder

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/internetarchive/olimage/roles"
)

// BenchmarkBuildRaw builds a raw image of 256 MB of file content into a
// directory on disk, as built (O_DIRECT, sync_file_range) and plain
// (every write through the page cache, one fsync at the end), and
// reports the CPU time the process used besides the wall time.
func BenchmarkBuildRaw(b *testing.B) {
	src := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 32<<20)
	for i := range 8 {
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		p := filepath.Join(src, "opt", "data", string(rune('a'+i))+".bin")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	f, err := roles.Load(writeFleet(b, src))
	if err != nil {
		b.Fatal(err)
	}
	r, err := f.Role("r")
	if err != nil {
		b.Fatal(err)
	}
	for _, plain := range []bool{false, true} {
		name := "direct"
		if plain {
			name = "plain"
		}
		b.Run(name, func(b *testing.B) {
			plainWrites = plain
			defer func() { plainWrites = false }()
			var cpu time.Duration
			for range b.N {
				out := b.TempDir()
				var before, after syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &before)
				if _, err := Build(context.Background(), f, r, Options{Output: out}); err != nil {
					b.Fatal(err)
				}
				syscall.Getrusage(syscall.RUSAGE_SELF, &after)
				cpu += time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
				b.StopTimer()
				os.RemoveAll(out)
				b.StartTimer()
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}
