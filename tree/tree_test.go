package tree

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// lessSlow is the definition Less must keep: byte order, except that '/'
// sorts before every other byte.
func lessSlow(a, b string) bool {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			if a[i] == '/' || b[i] == '/' {
				return a[i] == '/'
			}
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func TestLess(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	alphabet := []byte("ab/-.\x00\xff")
	gen := func(base string) string {
		b := []byte(base)
		for range r.IntN(20) {
			b = append(b, alphabet[r.IntN(len(alphabet))])
		}
		return string(b)
	}
	prefixes := []string{"", "opt/openlibrary/deploys/olsystem/", "opt/openlibrary/deploys/olsystem-", "etc/nginx"}
	for range 200000 {
		a := gen(prefixes[r.IntN(len(prefixes))])
		b := gen(prefixes[r.IntN(len(prefixes))])
		if r.IntN(4) == 0 {
			b = a[:r.IntN(len(a)+1)] + gen("") // a shared prefix of any length
		}
		if got, want := Less(a, b), lessSlow(a, b); got != want {
			t.Fatalf("Less(%q, %q) = %v, want %v", a, b, got, want)
		}
		want := 1
		if a == b {
			want = 0
		} else if lessSlow(a, b) {
			want = -1
		}
		if got := Compare(a, b); got != want {
			t.Fatalf("Compare(%q, %q) = %d, want %d", a, b, got, want)
		}
	}
	// A directory comes right before its subtree.
	paths := []string{"a-b", "a/b/c", "a", "a/b", "a.b", "a/b-c", "a/b/c/d"}
	sort.Slice(paths, func(i, j int) bool { return Less(paths[i], paths[j]) })
	want := []string{"a", "a/b", "a/b/c", "a/b/c/d", "a/b-c", "a-b", "a.b"}
	for i := range want {
		if paths[i] != want[i] {
			t.Fatalf("sorted %q, want %q", paths, want)
		}
	}
	var es []*Entry
	for _, p := range []string{"a-b", "a/b/c", "a", "a/b", "a.b", "a/b-c", "a/b/c/d"} {
		es = append(es, (&Entry{}).WithPath(p))
	}
	Sort(es)
	for i := range want {
		if es[i].Path() != want[i] {
			t.Fatalf("Sort: %q at %d, want %q", es[i].Path(), i, want[i])
		}
	}
}

func BenchmarkLess(b *testing.B) {
	x, y := "opt/openlibrary/deploys/olsystem/3f9c2e1a7b04/etc/nginx/a.conf", "opt/openlibrary/deploys/olsystem/3f9c2e1a7b04/etc/nginx/b.conf"
	for range b.N {
		Less(x, y)
	}
}

func BenchmarkLessSlow(b *testing.B) {
	x, y := "opt/openlibrary/deploys/olsystem/3f9c2e1a7b04/etc/nginx/a.conf", "opt/openlibrary/deploys/olsystem/3f9c2e1a7b04/etc/nginx/b.conf"
	for range b.N {
		lessSlow(x, y)
	}
}

// TestNew checks that New sorts entries in tree order, returns entries
// already in order as they are, and refuses a duplicate path whether or
// not the input was in order; Get finds every path and nothing else.
func TestNew(t *testing.T) {
	paths := func(es []*Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Path())
		}
		return out
	}
	entries := func(ps ...string) []*Entry {
		var out []*Entry
		for _, p := range ps {
			out = append(out, (&Entry{Type: File}).WithPath(p))
		}
		return out
	}
	want := []string{"a", "a/b", "a/b/c", "a-b", "b"}
	for _, in := range [][]string{{"a-b", "a/b/c", "b", "a", "a/b"}, want} {
		tr, err := New(entries(in...))
		if err != nil {
			t.Fatalf("New(%q): %v", in, err)
		}
		if got := paths(tr.Entries); !slices.Equal(got, want) {
			t.Errorf("New(%q) = %q, want %q", in, got, want)
		}
		for _, p := range want {
			if e := tr.Get(p); e == nil || e.Path() != p {
				t.Errorf("Get(%q) = %v", p, e)
			}
		}
		for _, p := range []string{"", "a/", "a/b/c/d", "a.b", "c"} {
			if e := tr.Get(p); e != nil {
				t.Errorf("Get(%q) = %q, want nil", p, e.Path())
			}
		}
	}
	for _, in := range [][]string{{"a", "a/b", "a/b"}, {"b", "a", "b"}} {
		if _, err := New(entries(in...)); err == nil || !strings.Contains(err.Error(), "duplicate path") {
			t.Errorf("New(%q): error %v, want a duplicate path", in, err)
		}
	}
}

// Ascending checks a long list in ranges on every core; it answers as one
// pass over every pair does, wherever the pair out of order falls.
func TestAscending(t *testing.T) {
	serial := func(es []*Entry) bool {
		for i := 1; i < len(es); i++ {
			if ComparePaths(es[i-1], es[i]) >= 0 {
				return false
			}
		}
		return true
	}
	const n = 3<<14 + 5 // several ranges, the last one short
	sorted := make([]*Entry, n)
	for i := range sorted {
		sorted[i] = (&Entry{}).WithPath(fmt.Sprintf("d%d/f%06d", i/1000, i))
	}
	Sort(sorted)
	for _, tc := range []struct {
		name string
		at   int // the pair (at-1, at) is broken; 0 for none
		dup  bool
	}{
		{"in order", 0, false}, {"first pair", 1, false}, {"last pair", n - 1, false},
		{"across a range's edge", 1 << 14, false}, {"before a range's edge", 1<<14 - 1, false},
		{"second range's edge", 2 << 14, false}, {"duplicate path", 3 << 14, true}, {"duplicate at the end", n - 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := slices.Clone(sorted)
			switch {
			case tc.at == 0:
			case tc.dup:
				es[tc.at] = (&Entry{}).WithPath(es[tc.at-1].Path())
			default:
				es[tc.at-1], es[tc.at] = es[tc.at], es[tc.at-1]
			}
			if got, want := Ascending(es), serial(es); got != want {
				t.Fatalf("Ascending = %v, want %v", got, want)
			}
		})
	}
	for _, es := range [][]*Entry{nil, {new(Entry).WithPath("a")}, {new(Entry).WithPath("a"), new(Entry).WithPath("a")}, {new(Entry).WithPath("a/b"), new(Entry).WithPath("a-b")}, {new(Entry).WithPath("a-b"), new(Entry).WithPath("a/b")}} {
		if got, want := Ascending(es), serial(es); got != want {
			t.Fatalf("Ascending(%d entries) = %v, want %v", len(es), got, want)
		}
	}
}
