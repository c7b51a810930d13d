package overlays

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/klauspost/compress/zstd"
)

// Members smaller than a block are packed end to end: a million one-byte
// members took a block each (4 GB of spool) before. Every member still
// reads back as written, beside members that start at a block boundary
// and members with zero blocks.
func TestSpoolPacksSmallMembers(t *testing.T) {
	s, err := newSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type member struct {
		data []byte
		off  int64
		sm   contentSums
	}
	var ms []*member
	for i := range 3000 {
		var data []byte
		switch {
		case i%1000 == 500:
			data = bytes.Repeat([]byte{byte(i)}, 3*spoolBlock+7)
		case i%1000 == 900:
			data = append(make([]byte, 2*spoolBlock), 'z')
		case i%7 == 0:
			data = []byte{0} // all zeros, never written
		default:
			data = []byte(fmt.Sprint(i))
		}
		off, sm, err := s.write(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, &member{data, off, sm})
	}
	for i, m := range ms {
		rc, err := spoolContent{s, m.off, m.sm.size}.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, m.data) {
			t.Fatalf("member %d: got %q (%v), want %q", i, got, err, m.data)
		}
		if want, _ := hashReader(bytes.NewReader(m.data), int64(len(m.data)), nil); m.sm.digest != want.digest {
			t.Fatalf("member %d: digest %s, want %s", i, m.sm.digest, want.digest)
		}
	}
	fi, err := s.f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if limit := int64(128 << 10); fi.Size() > limit {
		t.Errorf("spool of 3,000 mostly one-byte members is %d bytes, want at most %d", fi.Size(), limit)
	}
}

// Spooling a small member allocates only its digest (the sum and its
// text): one copy buffer, one hash and one write buffer serve every
// member.
func TestSpoolWriteAllocs(t *testing.T) {
	s, err := newSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var r bytes.Reader
	data := []byte("x")
	allocs := testing.AllocsPerRun(1000, func() {
		r.Reset(data)
		if _, _, err := s.write(&r, 1); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 3 {
		t.Errorf("got %v allocations per one-byte member, want at most 3", allocs)
	}
}

// A plain tar archive is read again for content, so it needs no spool
// and no room in $TMPDIR.
func TestPlainTarNoSpool(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	want := map[string]string{"opt/a": "hello", "opt/big": strings.Repeat("b", 3*spoolBlock+5), "opt/z": string(make([]byte, 2*spoolBlock))}
	for _, name := range []string{"opt/a", "opt/big", "opt/z"} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(want[name]))})
		tw.Write([]byte(want[name]))
	}
	tw.Close()
	r := testReader(t)
	r.tmpdir = filepath.Join(t.TempDir(), "missing") // a spool would fail here
	l, err := r.readTar(testfs.Temp(t, "p.tar", buf.Bytes()), "t")
	if err != nil {
		t.Fatal(err)
	}
	if r.spool != nil {
		t.Errorf("a plain archive was spooled")
	}
	for name, content := range want {
		rc, err := l.get(name).Content.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || string(got) != content {
			t.Errorf("%s: got %d bytes (%v), want %d", name, len(got), err, len(content))
		}
	}
}

// A compressed archive that records its unpacked size is refused before
// anything is spooled when the spool's directory has less room, with an
// error that names the directory.
func TestSpoolNoRoom(t *testing.T) {
	dir := testenv.MountTmpfs(t, "1m")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "opt/big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4 << 20})
	tw.Write(bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16))
	tw.Close()
	zw, _ := zstd.NewWriter(nil)
	z := zw.EncodeAll(buf.Bytes(), nil) // records the content size
	r := testReader(t)
	r.tmpdir = dir
	name := testfs.Temp(t, "big.tar.zst", z)
	_, err := r.readTar(name, "t")
	if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "spool in "+dir+":") || !strings.HasPrefix(err.Error(), name+": ") {
		t.Fatalf("got %v, want %v naming %s and %s", err, ErrNoRoom, name, dir)
	}
}

func TestZstdContentSize(t *testing.T) {
	// The encoder leaves the size out below 256 bytes.
	for _, size := range []int{300, 70000, 1 << 20} {
		zw, _ := zstd.NewWriter(nil)
		z := zw.EncodeAll(make([]byte, size), nil)
		got, ok := zstdContentSize(z)
		if !ok || got != int64(size) {
			t.Errorf("%d bytes: got %d, %v", size, got, ok)
		}
	}
	// A single segment with a one-byte size, and a two-byte size (+256).
	if got, ok := zstdContentSize([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x05}); !ok || got != 5 {
		t.Errorf("single segment: got %d, %v, want 5", got, ok)
	}
	if got, ok := zstdContentSize([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x01, 0x00}); !ok || got != 257 {
		t.Errorf("two bytes: got %d, %v, want 257", got, ok)
	}
	if _, ok := zstdContentSize([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58}); ok {
		t.Errorf("a frame without a content size gave one")
	}
}

func FuzzZstdContentSize(f *testing.F) {
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x05})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0xc3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x40})
	f.Fuzz(func(t *testing.T, h []byte) {
		if n, ok := zstdContentSize(h); ok && n < 0 {
			t.Fatalf("negative size %d", n)
		}
	})
}
