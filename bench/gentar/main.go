// Command gentar writes the deterministic reference archives that
// bench/run.sh measures olimage on, straight to a .tar.zst with no tree on
// disk.
//
//	gentar -kind deep FILE   1,000,000 one-byte files at virtualenv depth
//
// The million tree's paths are short (opt/d000/s00000/f000.dat); a real
// /opt is not. deep lays its files out as a Python virtualenv's
// site-packages under opt/openlibrary/venv: 1,009 packages of 10
// submodules of 98 files, paths of about 109 bytes.
package main

import (
	"archive/tar"
	"bufio"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"
)

func main() {
	kind := flag.String("kind", "deep", "archive to write: deep")
	flag.Parse()
	if flag.NArg() != 1 || *kind != "deep" {
		fmt.Fprintln(os.Stderr, "usage: gentar -kind deep FILE")
		os.Exit(2)
	}
	if err := write(flag.Arg(0), deep); err != nil {
		fmt.Fprintln(os.Stderr, "gentar:", err)
		os.Exit(1)
	}
}

// write writes FILE.tmp with gen's members, then renames it to FILE, so
// an interrupted run leaves no archive that looks whole.
func write(name string, gen func(add func(hdr *tar.Header, body []byte) error) error) error {
	f, err := os.Create(name + ".tmp")
	if err != nil {
		return err
	}
	defer os.Remove(name + ".tmp")
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	epoch := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(hdr *tar.Header, body []byte) error {
		hdr.ModTime, hdr.Uname, hdr.Gname, hdr.Format = epoch, "root", "root", tar.FormatGNU
		hdr.Size = int64(len(body))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	if err := gen(add); err != nil {
		return err
	}
	for _, c := range []interface{ Close() error }{tw, zw} {
		if err := c.Close(); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(name+".tmp", name)
}

// deep writes 1,000,000 entries shaped like a virtualenv's site-packages.
func deep(add func(hdr *tar.Header, body []byte) error) error {
	dir := func(p string) error { return add(&tar.Header{Name: p + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil) }
	const base = "opt/openlibrary/venv/lib/python3.12/site-packages"
	for _, d := range []string{"opt", "opt/openlibrary", "opt/openlibrary/venv", "opt/openlibrary/venv/lib", "opt/openlibrary/venv/lib/python3.12", base} {
		if err := dir(d); err != nil {
			return err
		}
	}
	n := 6
	for p := 0; n < 1_000_000; p++ {
		pkg := fmt.Sprintf("%s/package_number_%04d", base, p)
		if err := dir(pkg); err != nil {
			return err
		}
		n++
		for s := range 10 {
			sub := fmt.Sprintf("%s/submodule_%02d", pkg, s)
			if err := dir(sub); err != nil {
				return err
			}
			n++
			for f := range 98 {
				name := fmt.Sprintf("%s/implementation_file_%03d.py", sub, f)
				if err := add(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, []byte{byte('a' + f%26)}); err != nil {
					return err
				}
				n++
			}
		}
	}
	return nil
}
