// Package testfs writes the small file trees tests build from.
package testfs

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// WriteFiles writes each file of files (slash-separated path relative to
// dir, to content) with mode 0644, making parent directories as needed.
func WriteFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// NewDir writes files, as WriteFiles does, into a new temporary directory
// and returns it.
func NewDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	WriteFiles(t, dir, files)
	return dir
}

// Temp writes data to a file called name in a new temporary directory,
// with mode 0644, and returns its path.
func Temp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Read returns the content of the file at p.
func Read(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// SHA256 returns the hex SHA-256 digest of all r reads.
func SHA256(t testing.TB, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// FileSHA256 returns the hex SHA-256 digest of the file at p.
func FileSHA256(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return SHA256(t, f)
}

// ReadJSON decodes the JSON file at p into a T.
func ReadJSON[T any](t testing.TB, p string) T {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return v
}

// EditJSON decodes the JSON file at p into a T, lets edit change it and
// writes it back.
func EditJSON[T any](t testing.TB, p string, edit func(*T)) {
	t.Helper()
	v := ReadJSON[T](t, p)
	edit(&v)
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Names lists the names in dir, hidden ones included, sorted.
func Names(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, d := range des {
		names = append(names, d.Name())
	}
	return names
}

// Tar returns a plain tar archive of files (member name to content),
// regular files of mode 0644 in name order, for WriteFiles to write.
func Tar(tb testing.TB, files map[string]string) string {
	tb.Helper()
	var b strings.Builder
	tw := tar.NewWriter(&b)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

// WriteOneByteTarZst writes a .tar.zst of dirs directories of per one-byte
// files each, streaming.
func WriteOneByteTarZst(tb testing.TB, name string, dirs, per int) {
	tb.Helper()
	WriteOneByteTarZstUnder(tb, name, "opt", dirs, per)
}

// WriteOneByteTarZstUnder is WriteOneByteTarZst with the directories in
// under (which the archive does not list) rather than opt.
func WriteOneByteTarZstUnder(tb testing.TB, name, under string, dirs, per int) {
	tb.Helper()
	f, err := os.Create(name)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		tb.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	check := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	for d := range dirs {
		dir := fmt.Sprintf("%s/d%04d", under, d)
		check(tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755}))
		for i := range per {
			check(tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s/f%04d", dir, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}))
			_, err := tw.Write([]byte{byte(i)})
			check(err)
		}
	}
	check(tw.Close())
	check(zw.Close())
	check(bw.Flush())
}

// HeapHeld calls build and returns the bytes of heap what it returns
// holds, measured between two collections, and that value.
func HeapHeld[T any](build func() T) (int64, T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc), v
}
