package ext4

import (
	"fmt"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/tree"
)

type imageCase struct {
	name    string
	entries func(t testing.TB) []*tree.Entry
	opts    func(o *Options)
	// long cases write hundreds of MiB or tens of thousands of inodes;
	// -short (make test) leaves them to make test-long.
	long bool
}

func manyFiles(dirPath string, n int, nameLen int) func(t testing.TB) []*tree.Entry {
	return func(t testing.TB) []*tree.Entry {
		es := []*tree.Entry{dir(dirPath, 0o755)}
		for i := range n {
			name := fmt.Sprintf("f%06d", i)
			if nameLen > len(name) {
				name += strings.Repeat("x", nameLen-len(name))
			}
			es = append(es, file(t, dirPath+"/"+name, 0o644, memContent(name[:7])))
		}
		return es
	}
}

var imageCases = []imageCase{
	{name: "empty", entries: func(t testing.TB) []*tree.Entry { return nil }},
	{name: "one file", entries: func(t testing.TB) []*tree.Entry {
		return []*tree.Entry{file(t, "hello", 0o644, memContent("hello, world\n"))}
	}},
	{name: "sizes", entries: func(t testing.TB) []*tree.Entry {
		var es []*tree.Entry
		for _, n := range []int64{0, 1, 4095, 4096, 4097, 8192, 65535, 65536, 65537, 1 << 20} {
			e := file(t, fmt.Sprintf("size-%d", n), 0o640, &genContent{size: n, seed: byte(n)})
			e.UID, e.GID = uint32(n%70000), 100000+uint32(n%7)
			es = append(es, e)
		}
		return es
	}},
	{name: "modes", entries: func(t testing.TB) []*tree.Entry {
		return []*tree.Entry{
			file(t, "setuid", 0o4755, memContent("x")),
			file(t, "none", 0, memContent("y")),
			dir("sticky", 0o1777),
			dir("setgid", 0o2750),
		}
	}, opts: func(o *Options) { o.RootMode, o.RootUID, o.RootGID = 0o750, 1000, 1001 }},
	{name: "symlinks", entries: func(t testing.TB) []*tree.Entry {
		return []*tree.Entry{
			symlink("fast", "target"),
			symlink("fast59", strings.Repeat("a", 59)),
			symlink("slow60", strings.Repeat("b", 60)),
			symlink("slow4095", strings.Repeat("c/", 2047)+"c"),
			symlink("dangling", "/nowhere/at/all"),
		}
	}},
	{name: "hard links", entries: func(t testing.TB) []*tree.Entry {
		return []*tree.Entry{
			dir("a", 0o755),
			file(t, "a/primary", 0o644, memContent("shared content")),
			hardlink("a/second", "a/primary"),
			dir("b", 0o755),
			hardlink("b/third", "a/primary"),
			file(t, "empty", 0o644, memContent("")),
			hardlink("empty-too", "empty"),
			hardlink("a/0-before", "b/later"),
			file(t, "b/later", 0o600, memContent("linked before it appears")),
		}
	}},
	{name: "xattrs", entries: func(t testing.TB) []*tree.Entry {
		small := file(t, "small", 0o644, memContent("s"))
		small.SetXattrs([]tree.Xattr{{Name: "user.a", Value: []byte("1")}, {Name: "trusted.t", Value: []byte("two")}})
		caps := file(t, "caps", 0o755, memContent("c"))
		caps.SetXattrs([]tree.Xattr{{Name: "security.capability", Value: []byte("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")}})
		big := file(t, "big", 0o644, memContent("b"))
		big.SetXattrs([]tree.Xattr{
			{Name: "user.one", Value: []byte(strings.Repeat("1", 50))},
			{Name: "user.two", Value: []byte(strings.Repeat("2", 500))},
			{Name: "user.empty", Value: nil},
			{Name: "security.selinux", Value: []byte("system_u:object_r:etc_t:s0\x00")},
		})
		d := dir("d", 0o755)
		d.SetXattrs([]tree.Xattr{{Name: "user.dir", Value: []byte("yes")}})
		l := symlink("d/link", "../small")
		l.SetXattrs([]tree.Xattr{{Name: "trusted.big", Value: []byte(strings.Repeat("L", 200))}})
		return []*tree.Entry{small, caps, big, d, l}
	}},
	{name: "deep", entries: func(t testing.TB) []*tree.Entry {
		var es []*tree.Entry
		p := ""
		for i := range 60 {
			if p != "" {
				p += "/"
			}
			p += fmt.Sprintf("level%02d", i)
			es = append(es, dir(p, 0o755), file(t, p+"/file", 0o644, memContent(p)))
		}
		return es
	}},
	{name: "htree 5000", entries: manyFiles("many", 5000, 0), long: true},
	{name: "htree two levels", entries: manyFiles("long", 8000, 250), opts: func(o *Options) { o.Journal = false }, long: true},
	{name: "sparse", entries: func(t testing.TB) []*tree.Entry {
		return []*tree.Entry{
			file(t, "holes", 0o644, &genContent{size: 10<<20 + 123, zeros: [][2]int64{{0, 1 << 20}, {3 << 20, 5<<20 + 17}, {9 << 20, 11 << 20}}}),
			file(t, "allzero", 0o644, &genContent{size: 1 << 20, zeros: [][2]int64{{0, 1 << 20}}}),
			file(t, "smallzero", 0o644, &genContent{size: 8192, zeros: [][2]int64{{0, 8192}}}),
			file(t, "fragmented", 0o644, &genContent{size: 8 << 20, zeros: everyOther(8<<20, 2*BlockSize)}),
			// 3072 extents: an extent tree of depth 2.
			file(t, "very-fragmented", 0o644, &genContent{size: 24 << 20, zeros: everyOther(24<<20, BlockSize)}),
		}
	}},
	{name: "no journal", entries: func(t testing.TB) []*tree.Entry {
		return []*tree.Entry{file(t, "f", 0o644, memContent("x"))}
	}, opts: func(o *Options) { o.Journal = false }},
	{name: "lost+found in tree", entries: func(t testing.TB) []*tree.Entry {
		l := dir("lost+found", 0o700)
		return []*tree.Entry{l, file(t, "lost+found/#12", 0o644, memContent("found"))}
	}},
	{name: "short last group dropped", entries: func(t testing.TB) []*tree.Entry {
		return []*tree.Entry{file(t, "f", 0o644, &genContent{size: 3 << 20})}
	}, opts: func(o *Options) { o.Size = (3*32768 + 500) * BlockSize }},
	{name: "short last backup group", entries: func(t testing.TB) []*tree.Entry {
		return []*tree.Entry{file(t, "f", 0o644, &genContent{size: 3 << 20})}
	}, opts: func(o *Options) { o.Size = (32768 + 2000) * BlockSize }},
	{name: "htree utf-8", entries: func(t testing.TB) []*tree.Entry {
		es := []*tree.Entry{dir("ünïcødé", 0o755)}
		n := 3000
		if testing.Short() {
			n = 800 // still a directory of several blocks, so an htree
		}
		for i := range n {
			es = append(es, symlink(fmt.Sprintf("ünïcødé/файл-%d-\xff\x80", i), "t"))
		}
		return es
	}},
	{name: "journal across groups", entries: func(t testing.TB) []*tree.Entry {
		return []*tree.Entry{file(t, "f", 0o644, memContent("x"))}
	}, opts: func(o *Options) { o.Size = 17 << 30 }, long: true},
	{name: "inodes in three groups", entries: func(t testing.TB) []*tree.Entry {
		var es []*tree.Entry
		for i := range 3000 {
			d := fmt.Sprintf("d%04d", i)
			es = append(es, dir(d, 0o755), dir(d+"/sub", 0o700), file(t, d+"/sub/f", 0o644, memContent(d)), symlink(d+"/l", "sub/f"))
		}
		return es
	}, opts: func(o *Options) { o.Size = 300 << 20 }, long: true},
	{name: "300 MiB", entries: func(t testing.TB) []*tree.Entry {
		return []*tree.Entry{
			dir("big", 0o755),
			file(t, "big/file", 0o644, &genContent{size: 200 << 20, seed: 3}),
			file(t, "big/after", 0o644, memContent("after")),
		}
	}, opts: func(o *Options) { o.Size = 300 << 20 }, long: true},
}

// skipLong skips a long case under -short.
func skipLong(t *testing.T, long bool) {
	t.Helper()
	if long && testing.Short() {
		t.Skip("long case; run without -short (make test-long)")
	}
}

// everyOther makes zero ranges of size step every other step up to n.
func everyOther(n, step int64) [][2]int64 {
	var z [][2]int64
	for s := int64(0); s < n; s += 2 * step {
		z = append(z, [2]int64{s, s + step})
	}
	return z
}

func TestImages(t *testing.T) {
	for _, tc := range imageCases {
		t.Run(tc.name, func(t *testing.T) {
			skipLong(t, tc.long)
			t.Parallel()
			o := testOptions()
			if tc.opts != nil {
				tc.opts(&o)
			}
			tr := newTree(t, tc.entries(t)...)
			img, _ := writeImage(t, tr, o)
			keep(t, img)
			verify(t, img, tr, o)
		})
	}
}
