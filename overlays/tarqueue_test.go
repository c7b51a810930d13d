package overlays

import (
	"archive/tar"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/internetarchive/olimage/internal/testfs"
)

// A hard link copies its target's sums, which the spooling goroutine
// sets: the link waits for them.
func TestSpoolQueueHardLink(t *testing.T) {
	var members []tarMember
	for i := range 3000 {
		members = append(members, tarMember{name: fmt.Sprintf("opt/f%04d", i), body: fmt.Sprint(i)})
		members = append(members, tarMember{name: fmt.Sprintf("opt/h%04d", i), typ: tar.TypeLink, link: fmt.Sprintf("opt/f%04d", i)})
	}
	l, err := testReader(t).readTar(testfs.Temp(t, "a.tar.zst", zstdOf(t, mkTar(members...))), "t")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		f, h := l.get(fmt.Sprintf("opt/f%04d", i)), l.get(fmt.Sprintf("opt/h%04d", i))
		if f.Size != int64(len(fmt.Sprint(i))) || f.Digest != h.Digest || h.Size != f.Size || !h.HasCheck || h.Check != f.Check {
			t.Fatalf("%s: size %d digest %s, its link %s: size %d digest %s", f.Path(), f.Size, f.Digest, h.Path(), h.Size, h.Digest)
		}
	}
}

// The first error is the earliest member's: one spooling fails before
// a later member, refused while the first waited to be spooled.
func TestSpoolQueueFirstError(t *testing.T) {
	var members []tarMember
	for i := range 300 {
		body := make([]byte, 4096) // not zeros, which the spool does not write
		rand.Read(body)
		members = append(members, tarMember{name: fmt.Sprintf("opt/f%03d", i), body: string(body)})
	}
	members = append(members, tarMember{name: "/etc/passwd", body: "x"})
	r := testReader(t)
	sp, err := newSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Gathered writes reach the file once 1 MiB is pending, at the 257th
	// member, and fail there.
	sp.f.Close()
	if sp.f, err = os.Open(os.DevNull); err != nil {
		t.Fatal(err)
	}
	r.spool = sp
	name := testfs.Temp(t, "a.tar.zst", zstdOf(t, mkTar(members...)))
	_, err = r.readTar(name, "t")
	if !errors.Is(err, syscall.EBADF) || !strings.HasPrefix(err.Error(), name+`: entry "opt/f256": spool in `) {
		t.Fatalf("got %v, want the spool's error at opt/f256", err)
	}
}
