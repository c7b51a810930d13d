package overlays

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// readAll reads f with reads of at most k bytes, counting the reads that
// returned data, until EOF.
func readAll(t *testing.T, f *rawFile, k int) (got []byte, reads int) {
	t.Helper()
	buf := make([]byte, k)
	for {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if n > 0 {
			reads++
		}
		if errors.Is(err, io.EOF) {
			return got, reads
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A short read that ends at the listed size is the end of the file: the
// next Read says EOF without asking the kernel, so bytes appended after
// it are not seen. Anywhere else a short read is not taken as the end.
func TestRawFileEndsAtListedSize(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	appendTo := func(s string) {
		t.Helper()
		a, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.WriteString(s); err != nil {
			t.Fatal(err)
		}
		a.Close()
	}

	f, err := openRegular(p, 10)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 11)
	if n, err := f.Read(buf); n != 10 || err != nil {
		t.Fatalf("first read: %d, %v; want 10, nil", n, err)
	}
	appendTo("ab")
	if n, err := f.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("read after a short read at the listed size: %d, %v; want 0, EOF without a system call", n, err)
	}
	f.Close()

	// Listed larger than it is: the short read at 12 bytes is not at the
	// listed size, so the next read is made and finds the end.
	f, _ = openRegular(p, 20)
	if got, _ := readAll(t, f, 64); string(got) != "0123456789ab" {
		t.Errorf("listed as 20 bytes: read %q", got)
	}
	f.Close()

	// Listed smaller than it is: a read of one byte more than listed
	// fills its buffer, which is how callers see growth.
	f, _ = openRegular(p, 5)
	if n, err := f.Read(make([]byte, 6)); n != 6 || err != nil {
		t.Errorf("listed as 5 bytes, read of 6: %d, %v; want 6, nil", n, err)
	}
	f.Close()

	// Unknown size: read until the kernel says the end.
	f, _ = openRegular(p, -1)
	if got, reads := readAll(t, f, 4); string(got) != "0123456789ab" || reads != 3 {
		t.Errorf("unknown size: read %q in %d reads", got, reads)
	}
	f.Close()
}
