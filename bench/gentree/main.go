// Command gentree writes the deterministic reference trees that
// bench/run.sh measures olimage and its peers on.
//
//	gentree -kind merge100k DIR   100k entries: 90k small files in 10k directories
//	gentree -kind source DIR      about 13k files, 130 MB, shaped like a source tree
//	gentree -kind small60k DIR    60k files of 1-8 KiB in 3k directories, with symlinks
//	gentree -kind big DIR         four 256 MiB random files and one 256 MiB zero file
//	gentree -kind million DIR     1,000 directories of 1,000 one-byte files
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
)

func main() {
	kind := flag.String("kind", "merge100k", "tree to write: merge100k, source, small60k, big or million")
	seed := flag.Int64("seed", 1, "random seed; the same seed writes the same tree")
	change := flag.Float64("change", 0, "fraction of files whose content differs from seed's (for diff benchmarks)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: gentree [-kind K] [-seed N] [-change F] DIR")
		os.Exit(2)
	}
	g := &gen{root: flag.Arg(0), rng: rand.New(rand.NewSource(*seed)), change: *change, alt: rand.New(rand.NewSource(*seed + 1000))}
	var err error
	switch *kind {
	case "merge100k":
		err = g.files(10000, 9, 0, 2048, false)
	case "source":
		err = g.files(1300, 10, 0, 20000, false)
	case "small60k":
		err = g.files(3000, 20, 1024, 8192, true)
	case "big":
		err = g.big()
	case "million":
		err = g.files(1000, 1000, 1, 2, false)
	default:
		err = fmt.Errorf("unknown kind %q", *kind)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentree:", err)
		os.Exit(1)
	}
}

type gen struct {
	root   string
	rng    *rand.Rand
	alt    *rand.Rand
	change float64
}

// files writes dirs directories of perDir files each, sized uniformly in
// [lo, hi), under a two-level fan-out, plus a symlink per directory if asked.
func (g *gen) files(dirs, perDir, lo, hi int, links bool) error {
	buf := make([]byte, hi)
	for d := 0; d < dirs; d++ {
		dir := filepath.Join(g.root, "opt", fmt.Sprintf("d%03d", d%100), fmt.Sprintf("s%05d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for f := 0; f < perDir; f++ {
			n := lo + g.rng.Intn(hi-lo)
			g.rng.Read(buf[:n])
			// Some text-like files compress and diff like sources do.
			if f%3 == 0 {
				for i := range buf[:n] {
					buf[i] = 'a' + buf[i]%26
					if i%60 == 59 {
						buf[i] = '\n'
					}
				}
			}
			if g.change > 0 && g.alt.Float64() < g.change && n > 0 {
				buf[0] ^= 0xff
			}
			mode := os.FileMode(0o644)
			if f == 0 {
				mode = 0o755
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.dat", f)), buf[:n], mode); err != nil {
				return err
			}
		}
		if links {
			if err := os.Symlink("f00.dat", filepath.Join(dir, "link")); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *gen) big() error {
	dir := filepath.Join(g.root, "opt", "big")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for i := 0; i < 5; i++ {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("big%d.bin", i)))
		if err != nil {
			return err
		}
		for j := 0; j < 256; j++ {
			if i < 4 {
				g.rng.Read(buf)
			} else {
				clear(buf)
			}
			if _, err := f.Write(buf); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
