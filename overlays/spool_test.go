package overlays

import (
	"bytes"
	"fmt"
	"io"
	"testing"
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
