package tree

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"
)

// TestEntryPath checks that an entry's path read in any of its forms is
// the one it was set to, and that comparing entries agrees with Compare
// of their paths, however they were set.
func TestEntryPath(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	alphabet := []byte("ab/-.\xff")
	prefixes := []string{"", "opt/openlibrary/venv/lib/python3.12/site-packages/", "opt/openlibrary/venv/lib/python3.12/site-packages-", "etc/nginx/", "a/"}
	gen := func() string {
		for {
			b := []byte(prefixes[r.IntN(len(prefixes))])
			for range 1 + r.IntN(12) {
				b = append(b, alphabet[r.IntN(len(alphabet))])
			}
			if CheckPath(string(b)) == nil {
				return string(b)
			}
		}
	}
	var ps Paths
	var pb PathBuf
	var entries []*Entry
	for i := range 20000 {
		p := gen()
		e := new(Entry)
		if i%2 == 0 {
			e.SetPath(p)
		} else {
			ps.Set(e, p)
		}
		d, n := e.PathParts()
		if e.Path() != p || string(e.AppendPath([]byte("x"))) != "x"+p || d+n != p || pb.Of(e) != p ||
			e.Name() != p[strings.LastIndexByte(p, '/')+1:] || e.Parent() != Parent(p) || !e.HasPath(p) {
			t.Fatalf("set %q: Path %q, AppendPath %q, PathParts %q %q, PathBuf %q, Name %q, Parent %q, HasPath %v",
				p, e.Path(), e.AppendPath(nil), d, n, pb.Of(e), e.Name(), e.Parent(), e.HasPath(p))
		}
		if e.HasPath(p+"a") || e.HasPath("a/"+p) {
			t.Fatalf("%q: HasPath of another path", p)
		}
		entries = append(entries, e)
	}
	for range 200000 {
		a, b := entries[r.IntN(len(entries))], entries[r.IntN(len(entries))]
		want := Compare(a.Path(), b.Path())
		if got := ComparePaths(a, b); got != want {
			t.Fatalf("ComparePaths(%q, %q) = %d, want %d", a.Path(), b.Path(), got, want)
		}
		if got := a.ComparePath(b.Path()); got != want {
			t.Fatalf("%q.ComparePath(%q) = %d, want %d", a.Path(), b.Path(), got, want)
		}
		if got := SamePath(a, b); got != (want == 0) {
			t.Fatalf("SamePath(%q, %q) = %v", a.Path(), b.Path(), got)
		}
	}
	// Prefixes of one another, which the parts split differently.
	for _, c := range [][2]string{{"a/b", "a/b/c"}, {"a/bc", "a/b/c"}, {"a-b/c", "a/b-c"}, {"ab", "a/b"}, {"a/b", "a/b"}} {
		a, b := new(Entry).WithPath(c[0]), new(Entry).WithPath(c[1])
		if got, want := ComparePaths(a, b), Compare(c[0], c[1]); got != want {
			t.Errorf("ComparePaths(%q, %q) = %d, want %d", c[0], c[1], got, want)
		}
		if got, want := ComparePaths(b, a), Compare(c[1], c[0]); got != want {
			t.Errorf("ComparePaths(%q, %q) = %d, want %d", c[1], c[0], got, want)
		}
	}
}

// TestSharedParent checks that the entries of one directory share its
// path: two entries set from paths of their own hold one copy of the
// parent's path, not one each, and keep none of the bytes they were
// given.
func TestSharedParent(t *testing.T) {
	dir := "opt/openlibrary/venv/lib/python3.12/site-packages/requests"
	// Paths built at run time, so that they share no bytes to begin with.
	pa, pb := strings.Clone(dir+"/api.py"), strings.Clone(dir+"/models.py")
	a, b := new(Entry).WithPath(pa), new(Entry)
	var ps Paths
	ps.Set(b, pb)
	if a.Parent() != dir || b.Parent() != dir {
		t.Fatalf("parents %q and %q, want %q", a.Parent(), b.Parent(), dir)
	}
	if unsafe.StringData(a.Parent()) != unsafe.StringData(b.Parent()) {
		t.Error("two entries of one directory hold a copy of its path each")
	}
	if a.dir != b.dir {
		t.Error("two entries of one directory hold different parent handles")
	}
	for _, c := range []struct {
		e *Entry
		p string
	}{{a, pa}, {b, pb}} {
		start, end := uintptr(unsafe.Pointer(unsafe.StringData(c.p))), uintptr(unsafe.Pointer(unsafe.StringData(c.p)))+uintptr(len(c.p))
		for _, s := range []string{c.e.Parent(), c.e.Name()} {
			if q := uintptr(unsafe.Pointer(unsafe.StringData(s))); q >= start && q < end {
				t.Errorf("%q keeps the bytes of the path it was set from", c.p)
			}
		}
	}
	// Setting a path, or reading a parent or a name, allocates nothing
	// once the parent is interned and the path is set.
	if n := testing.AllocsPerRun(100, func() { _, _ = a.Parent(), a.Name() }); n != 0 {
		t.Errorf("Parent and Name allocate %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { ComparePaths(a, b) }); n != 0 {
		t.Errorf("ComparePaths allocates %v times", n)
	}
}

// A top-level entry's path is its name, with no parent.
func TestTopLevelPath(t *testing.T) {
	e := new(Entry).WithPath("opt")
	if e.Path() != "opt" || e.Parent() != "" || e.Name() != "opt" {
		t.Errorf("path %q, parent %q, name %q", e.Path(), e.Parent(), e.Name())
	}
	var zero Entry
	if zero.Path() != "" || zero.Parent() != "" || zero.Name() != "" {
		t.Errorf("zero entry: path %q, parent %q, name %q", zero.Path(), zero.Parent(), zero.Name())
	}
}

// BenchmarkComparePaths compares the entries BenchmarkLess compares the
// paths of, in one directory (as sorting mostly does) and in two.
func BenchmarkComparePaths(b *testing.B) {
	x := new(Entry).WithPath("opt/openlibrary/deploys/olsystem/3f9c2e1a7b04/etc/nginx/a.conf")
	y := new(Entry).WithPath("opt/openlibrary/deploys/olsystem/3f9c2e1a7b04/etc/nginx/b.conf")
	z := new(Entry).WithPath("opt/openlibrary/deploys/olsystem/3f9c2e1a7b04/etc/nginy/b.conf")
	b.Run("siblings", func(b *testing.B) {
		for range b.N {
			ComparePaths(x, y)
		}
	})
	b.Run("cousins", func(b *testing.B) {
		for range b.N {
			ComparePaths(x, z)
		}
	})
}
