package overlays

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/roles"
)

func testReader(t *testing.T) *reader {
	t.Helper()
	r := &reader{ctx: context.Background(), fleet: &roles.Fleet{
		Epoch:    1000,
		Owners:   map[string]uint32{"root": 0},
		Groups:   map[string]uint32{"root": 0},
		Defaults: roles.Defaults{DirMode: 0o755, FileMode: 0o644, ExecMode: 0o755},
	}}
	t.Cleanup(func() { r.close() })
	return r
}

func TestTarUnsafe(t *testing.T) {
	long := strings.Repeat("n", 256)
	tests := []struct {
		name    string
		members []tarMember
		want    string
	}{
		{"absolute path", []tarMember{{name: "/etc/passwd", body: "x"}}, `entry "/etc/passwd": unsafe entry: absolute path`},
		{"dot dot", []tarMember{{name: "opt/../../x", body: "x"}}, `entry "opt/../../x": unsafe entry: path contains ".."`},
		{"below a symlink", []tarMember{{name: "opt", typ: tar.TypeSymlink, link: "/etc"}, {name: "opt/cron", body: "x"}}, `entry "opt/cron": unsafe entry: lies below "opt", a symlink in the same archive`},
		{"long name", []tarMember{{name: "opt/" + long, body: "x"}}, `is 256 bytes; ext4 allows 255`},
		{"char device", []tarMember{{name: "dev/null", typ: tar.TypeChar}}, `entry "dev/null": unsafe entry: device node`},
		{"block device", []tarMember{{name: "dev/sda", typ: tar.TypeBlock}}, `entry "dev/sda": unsafe entry: device node`},
		{"fifo", []tarMember{{name: "run/p", typ: tar.TypeFifo}}, `entry "run/p": unsafe entry: fifo`},
		{"hard link outside", []tarMember{{name: "x", typ: tar.TypeLink, link: "../../etc/shadow"}}, `hard link target: path contains ".."`},
		{"hard link to a missing member", []tarMember{{name: "x", typ: tar.TypeLink, link: "y"}}, `hard link to "y", which is not a regular file earlier in the archive`},
		{"trusted xattr", []tarMember{{name: "opt/x", body: "x", pax: map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/etc"}}}, `entry "opt/x": unsafe entry: extended attribute "trusted.overlay.redirect": trusted.* attributes are refused`},
		{"selinux label", []tarMember{{name: "opt/x", body: "x", pax: map[string]string{"SCHILY.xattr.security.selinux": "system_u:object_r:shadow_t:s0"}}}, `entry "opt/x": unsafe entry: extended attribute "security.selinux": SELinux labels come from the VM's policy`},
		{"newline in a name", []tarMember{{name: "opt/x\nopt/y", body: "x"}}, `entry "opt/x\nopt/y": unsafe entry: name contains the control character '\n'`},
		{"escape in a name", []tarMember{{name: "opt/\x1b[2Jx", body: "x"}}, `entry "opt/\x1b[2Jx": unsafe entry: name contains the control character '\x1b'`},
		{"newline in a symlink target", []tarMember{{name: "opt/l", typ: tar.TypeSymlink, link: "a\nb"}}, `entry "opt/l": unsafe entry: symlink target: name contains the control character '\n'`},
		{"path over PATH_MAX", []tarMember{{name: "opt/" + strings.Repeat("abcdefgh/", 500) + "x", body: "x"}}, `... (4505 bytes): unsafe entry: path is 4505 bytes; olimage allows 4096 (PATH_MAX)`},
		{"hard link to a directory", []tarMember{{name: "d", typ: tar.TypeDir}, {name: "x", typ: tar.TypeLink, link: "d"}}, `hard link to "d"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testfs.Temp(t, "a.tar", mkTar(tc.members...))
			_, err := testReader(t).readTar(p, "t")
			if err == nil {
				t.Fatalf("got no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), p+": ") {
				t.Fatalf("got %q, want it to start with the archive and contain %q", err, tc.want)
			}
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("error %q does not wrap ErrUnsafe", err)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	// archive/tar ends names at a NUL and refuses one in PAX paths, and Linux
	// file names cannot hold one, so check the guard itself.
	for _, name := range []string{"a\x00b", "opt/" + strings.Repeat("x", 256)} {
		if err := checkName(name); !errors.Is(err, ErrUnsafe) {
			t.Errorf("checkName(%q) = %v, want ErrUnsafe", name, err)
		}
	}
	if err := checkName("opt/" + strings.Repeat("x", 255)); err != nil {
		t.Errorf("checkName(255 bytes) = %v, want nil", err)
	}
}

func TestTarCompression(t *testing.T) {
	plain := mkTar(tarMember{name: "opt/x", body: "hello"}, tarMember{name: "opt/y", typ: tar.TypeSymlink, link: "x"})
	var gz, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain)
	gw.Close()
	zw, _ := zstd.NewWriter(&zs)
	zw.Write(plain)
	zw.Close()
	for name, data := range map[string][]byte{"a.tar": plain, "a.tar.gz": gz.Bytes(), "a.tar.zst": zs.Bytes(), "misnamed.tar": gz.Bytes()} {
		t.Run(name, func(t *testing.T) {
			l, err := testReader(t).readTar(testfs.Temp(t, name, data), "t")
			if err != nil {
				t.Fatal(err)
			}
			if l.len() != 2 || l.get("opt/x").Size != 5 || l.get("opt/y").Target != "x" {
				t.Fatalf("got entries %v", l.sorted())
			}
			rc, _ := l.get("opt/x").Content.Open()
			var b bytes.Buffer
			b.ReadFrom(rc)
			if b.String() != "hello" {
				t.Errorf("content %q, want hello", b.String())
			}
		})
	}
	corrupt := func(b []byte) []byte {
		c := append([]byte(nil), b...)
		for i := len(c) / 2; i < len(c)/2+16 && i < len(c); i++ {
			c[i] ^= 0xff
		}
		return c
	}
	for name, data := range map[string][]byte{"bad.tar.gz": corrupt(gz.Bytes()), "bad.tar.zst": corrupt(zs.Bytes()), "short.tar.gz": gz.Bytes()[:20], "junk.tar": []byte(strings.Repeat("junk", 200))} {
		t.Run(name, func(t *testing.T) {
			p := testfs.Temp(t, name, data)
			_, err := testReader(t).readTar(p, "t")
			if err == nil {
				t.Fatal("got no error for a corrupt archive")
			}
			if !strings.HasPrefix(err.Error(), p+": ") {
				t.Errorf("error %q does not name the archive", err)
			}
		})
	}
}

func FuzzReadTar(f *testing.F) {
	f.Add(mkTar(tarMember{name: "opt/x", body: "hello"}, tarMember{name: "opt/l", typ: tar.TypeLink, link: "opt/x"}))
	f.Add(mkTar(tarMember{name: "d", typ: tar.TypeDir}, tarMember{name: "d/.wh..wh..opq"}, tarMember{name: "s", typ: tar.TypeSymlink, link: "d"}))
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(mkTar(tarMember{name: "a", body: "b"}))
	gw.Close()
	f.Add(gz.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		p := testfs.Temp(t, "f.tar", data)
		l, err := testReader(t).readTar(p, "t")
		if err != nil {
			return
		}
		for _, e := range l.sorted() {
			path := e.Path()
			if path == "" || strings.HasPrefix(path, "/") || strings.Contains("/"+path+"/", "/../") {
				t.Fatalf("unsafe path %q accepted", path)
			}
			if e.Content != nil {
				rc, err := e.Content.Open()
				if err != nil {
					t.Fatal(err)
				}
				sm, err := hashReader(rc, e.Size, nil)
				if err != nil || sm.size != e.Size || sm.digest != e.Digest || !e.HasCheck || sm.check != e.Check {
					t.Fatalf("%s: spool gives %d bytes %s %08x, entry says %d %s %08x (%v)", path, sm.size, sm.digest, sm.check, e.Size, e.Digest, e.Check, err)
				}
			}
		}
	})
}

// zstdOf compresses the concatenation of parts, each a byte slice or a
// count of zeros, streaming: the zeros are never all in memory.
func zstdOf(t *testing.T, parts ...any) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for _, p := range parts {
		switch p := p.(type) {
		case []byte:
			zw.Write(p)
		case int:
			for n := p; n > 0; n -= len(zero) {
				zw.Write(zero[:min(n, len(zero))])
			}
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// tarOfZeros is a tar archive with one member, opt/zero, of n zero bytes,
// as the header that comes before the zeros and the padding and
// end-of-archive marker (two zero blocks) that come after them.
func tarOfZeros(n int) (head, tail []byte) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "opt/zero", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(n)})
	tw.Flush()
	return buf.Bytes(), make([]byte, (512-n%512)%512+1024)
}

// Decompression bombs are stopped at the fleet's limits on unpacked size
// and ratio, naming the archive and the entry.
func TestTarBomb(t *testing.T) {
	tests := []struct {
		name    string
		zeros   int
		sources roles.Sources
		want    string
	}{
		{"size", 24 << 20, roles.Sources{MaxUnpacked: 8 << 20, MaxRatio: 1e6}, `unpacks too large: more than 8 MiB unpacked; the fleet allows 8 MiB`},
		{"ratio", 24 << 20, roles.Sources{MaxRatio: 200}, `times; the fleet allows 200 (raise sources: {max_ratio: ...}`},
	}
	defer func(m int64) { minRatioCheck = m }(minRatioCheck)
	minRatioCheck = 4 << 20
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			head, tail := tarOfZeros(tc.zeros)
			p := testfs.Temp(t, "bomb.tar.zst", zstdOf(t, head, tc.zeros, tail))
			r := testReader(t)
			r.fleet.Sources = tc.sources
			_, err := r.readTar(p, "t")
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("got %v, want ErrTooLarge", err)
			}
			if !strings.HasPrefix(err.Error(), p+`: entry "opt/zero": `) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to name the archive and entry and say %q", err, tc.want)
			}
		})
	}
}

// What follows the end-of-archive marker is not unpacked: a corrupt
// stream there goes unnoticed, and many megabytes of zeros there
// count against no limit.
func TestTarStopsAtEndMarker(t *testing.T) {
	archive := mkTar(tarMember{name: "opt/x", body: "hello"})
	cut := zstdOf(t, archive, 8<<20)
	cut = cut[:len(cut)-6] // no frame end: unpacking to the end fails
	zeros := zstdOf(t, archive, 64<<20)
	for name, data := range map[string][]byte{"cut short": cut, "zeros": zeros} {
		t.Run(name, func(t *testing.T) {
			r := testReader(t)
			r.fleet.Sources = roles.Sources{MaxUnpacked: 16 << 20}
			l, err := r.readTar(testfs.Temp(t, "a.tar.zst", data), "t")
			if err != nil {
				t.Fatal(err)
			}
			if e := l.get("opt/x"); e == nil || e.Size != 5 {
				t.Errorf("got entries %v", l.sorted())
			}
		})
	}
}

// Zero blocks of members are holes in the spool, so a member of zeros
// takes no room in $TMPDIR.
func TestSpoolSparse(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	const size = 16 << 20
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "opt/a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5})
	tw.Write([]byte("hello"))
	tw.WriteHeader(&tar.Header{Name: "opt/zero", Typeflag: tar.TypeReg, Mode: 0o644, Size: size})
	tw.Flush()
	head := buf.Bytes()
	p := testfs.Temp(t, "z.tar.zst", zstdOf(t, head, size-1, []byte{1}, make([]byte, 1024)))
	r := testReader(t)
	r.fleet.Sources.MaxRatio = 1e6 // it is a bomb, a small one
	l, err := r.readTar(p, "t")
	if err != nil {
		t.Fatal(err)
	}
	e := l.get("opt/zero")
	rc, _ := e.Content.Open()
	sm, err := hashReader(rc, e.Size, nil)
	if err != nil || sm.digest != e.Digest || sm.size != size {
		t.Fatalf("spool gives %d bytes %s (%v), entry says %d %s", sm.size, sm.digest, err, e.Size, e.Digest)
	}
	fi, err := r.spool.f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used > 256<<10 {
		t.Errorf("spool of %d bytes takes %d bytes on disk, want holes", fi.Size(), used)
	}
}

// trailingZeros counts what a byte-by-byte count from the end would.
func TestTrailingZeros(t *testing.T) {
	type tc struct{ n, nz int }
	var tests []tc
	for n := range 40 {
		for nz := 0; nz <= n; nz++ {
			tests = append(tests, tc{n, nz})
		}
	}
	// Around the blocks of zeros it compares whole.
	for _, n := range []int{511, 4095, 4096, 4097, 8192, 8200, 12289} {
		for _, nz := range []int{0, 1, 8, 9, 511, 4095, 4096, 4097, 8191, 8192, 8193, n - 1, n} {
			if nz <= n {
				tests = append(tests, tc{n, nz})
			}
		}
	}
	for _, tc := range tests {
		b := make([]byte, tc.n)
		for i := range tc.n - tc.nz {
			b[i] = byte(i%3 + 1)
		}
		if got := trailingZeros(b); got != tc.nz {
			t.Fatalf("%d bytes ending in %d zeros: got %d", tc.n, tc.nz, got)
		}
	}
}

// archivePath takes the clean tail of a "./" name as it is, and cleans
// every other name as path.Clean does.
func TestArchivePathClean(t *testing.T) {
	for _, name := range []string{"./a/b", "./a", "./", ".", "./.", "./a/", ".//a", "./a//b", "./a/./b", "a/b", "a//b/", "./.a", "././a", "./a/.", "a"} {
		want := path.Clean(name)
		if want == "." {
			want = ""
		}
		got, err := archivePath(name)
		if err != nil || got != want {
			t.Errorf("archivePath(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { archivePath("./d123/f456") }); n != 0 {
		t.Errorf("archivePath of a clean \"./\" name allocates %v times, want 0", n)
	}
}

// archivePathRef is archivePath written plainly, in several passes, as
// it was before it took one: FuzzArchivePath holds the two equal.
func archivePathRef(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: name contains a NUL byte", ErrUnsafe)
	}
	if len(name) > maxPath {
		return "", fmt.Errorf("%w: path is %d bytes; olimage allows %d (PATH_MAX)", ErrUnsafe, len(name), maxPath)
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return "", fmt.Errorf("%w: name contains the control character %q", ErrUnsafe, name[i])
	}
	for _, c := range strings.Split(name, "/") {
		if len(c) > maxName {
			return "", fmt.Errorf("%w: name %.40q... is %d bytes; ext4 allows %d", ErrUnsafe, c, len(c), maxName)
		}
	}
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", errors.New("path contains \"..\"")
	}
	if p := path.Clean(name); p != "." {
		return p, nil
	}
	return "", nil
}

func FuzzArchivePath(f *testing.F) {
	for _, name := range []string{"./a/b", "./", ".//a", "./a/./b", "a//b/", "./../x", "a/..", "/x", "a\x00b", "a\nb", "a\x7fb", "é/\xff", strings.Repeat("x", 256) + "/a\n", "a/" + strings.Repeat("y", 256), strings.Repeat("z/", 2100)} {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want, werr := archivePathRef(name)
		got, err := archivePath(name)
		if got != want || fmt.Sprint(err) != fmt.Sprint(werr) {
			t.Errorf("archivePath(%q) = %q, %v; want %q, %v", name, got, err, want, werr)
		}
	})
}
