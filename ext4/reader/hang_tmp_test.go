package reader

import (
	"math/rand"
	"os"
	"runtime"
	"testing"
	"time"
)

func TestHangTmp(t *testing.T) {
	seeds := seedImages(t)
	rng := rand.New(rand.NewSource(1))
	for iter := 0; iter < 20000; iter++ {
		b := append([]byte(nil), seeds[iter%len(seeds)]...)
		for k := 0; k < 1+rng.Intn(20); k++ {
			switch rng.Intn(4) {
			case 0:
				b = b[:rng.Intn(len(b)+1)]
			case 1:
				off := rng.Intn(len(b) + 1)
				ins := make([]byte, rng.Intn(3000))
				rng.Read(ins)
				b = append(b[:off:off], append(ins, b[off:]...)...)
			default:
				if len(b) > 0 {
					off := rng.Intn(len(b))
					b[off] = byte(rng.Intn(256))
				}
			}
		}
		done := make(chan bool)
		go func() {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				os.WriteFile("/tmp/hang.img", b, 0o644)
				os.Stderr.Write(buf[:n])
				os.Exit(3)
			}
		}()
		exercise(b)
		close(done)
	}
}
