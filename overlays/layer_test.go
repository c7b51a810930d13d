package overlays

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/tree"
)

// digestFmt is layer.digest's definition, written with fmt.
func digestFmt(l *layer) string {
	es := append([]*tree.Entry(nil), l.sorted()...)
	sort.Slice(es, func(i, j int) bool { return tree.Less(es[i].Path(), es[j].Path()) })
	h := sha256.New()
	for _, e := range es {
		fmt.Fprintf(h, "%s %o %d:%d %d %s %q %q\n", e.Type, e.Mode, e.UID, e.GID, e.Size, e.Digest, e.Path(), e.Target)
		for _, x := range e.Xattrs() {
			fmt.Fprintf(h, "  %q=%x\n", x.Name, x.Value)
		}
	}
	for _, w := range sortedCopy(l.whiteouts) {
		fmt.Fprintf(h, "whiteout %q\n", w)
	}
	for _, o := range sortedCopy(l.opaque) {
		fmt.Fprintf(h, "opaque %q\n", o)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The digest of a layer is the same as its fmt definition, over names
// that need quoting (quotes, control bytes, invalid UTF-8, non-ASCII),
// every type, xattrs, whiteouts and opaque markers, and layers large
// enough to be hashed in several pieces.
func TestLayerDigestMatchesFmt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	parts := []string{"a", "b-c", "d/e", `q"uote`, "tab\there", "\xff\xfe", "ünï", "sp ace", "back\\slash", "\x00nul", "\u2028"}
	name := func() string {
		s := parts[rng.IntN(len(parts))]
		for range rng.IntN(4) {
			s += "/" + parts[rng.IntN(len(parts))]
		}
		return s
	}
	types := []tree.Type{tree.File, tree.Dir, tree.Symlink, tree.Hardlink}
	for trial := range 200 {
		l := newLayer()
		n := rng.IntN(40)
		if trial%50 == 0 {
			n = 3000 // over the 60 KiB the digest hashes at a time
		}
		for i := range n {
			e := (&tree.Entry{
				Type: types[rng.IntN(len(types))],
				Mode: rng.Uint32() & 0o7777, UID: rng.Uint32(), GID: rng.Uint32(),
				Size: rng.Int64N(1 << 40), Target: name(),
			}).WithPath(fmt.Sprintf("%s/%d", name(), i))
			if rng.IntN(2) == 0 {
				sum := sha256.Sum256([]byte(e.Path()))
				e.Digest = sum
			}
			for range rng.IntN(3) {
				v := make([]byte, rng.IntN(8))
				for k := range v {
					v[k] = byte(rng.Uint32())
				}
				e.SetXattrs(append(e.Xattrs(), tree.Xattr{Name: "user." + name(), Value: v}))
			}
			l.add(e)
		}
		for range rng.IntN(3) {
			l.whiteouts = append(l.whiteouts, name())
		}
		for range rng.IntN(3) {
			l.opaque = append(l.opaque, name())
		}
		if got, want := l.digest(), digestFmt(l); got != want {
			t.Fatalf("trial %d (%d entries): digest %s, fmt definition %s", trial, n, got, want)
		}
	}
}

// sorted is cached, and a later add is seen.
func TestLayerSortedAfterAdd(t *testing.T) {
	l := newLayer()
	l.add((&tree.Entry{Type: tree.File}).WithPath("b"))
	l.add((&tree.Entry{Type: tree.File}).WithPath("a-b"))
	if got := paths(l.sorted()); fmt.Sprint(got) != "[a-b b]" {
		t.Fatalf("sorted: %v", got)
	}
	l.add((&tree.Entry{Type: tree.Dir}).WithPath("a"))
	l.add((&tree.Entry{Type: tree.File}).WithPath("a/x"))
	if got := paths(l.sorted()); fmt.Sprint(got) != "[a a/x a-b b]" {
		t.Errorf("sorted after add: %v", got)
	}
}

func paths(es []*tree.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Path())
	}
	return out
}

// A layer's entries come out in tree order, one per path, the last added
// of each: as a map by path sorted would give them. Paths differ in their
// first eight bytes or only after, across '/' and bytes around it.
func TestLayerSorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "/-.0aZ~\xff"
	for round := range 200 {
		l := newLayer()
		want := map[string]*tree.Entry{}
		for range rng.IntN(1000) {
			b := make([]byte, 1+rng.IntN(30))
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			p := strings.Trim(strings.ReplaceAll(string(b), "//", "/"), "/")
			if p == "" || strings.Contains(p, "//") {
				continue
			}
			if len(want) > 0 && rng.IntN(8) == 0 {
				for q := range want { // a path added before, again
					p = q
					break
				}
			}
			e := (&tree.Entry{Type: tree.File}).WithPath(p)
			l.add(e)
			want[p] = e
			if round%2 == 0 && rng.IntN(50) == 0 {
				l.sorted() // sorting between adds changes nothing
			}
		}
		var ws []*tree.Entry
		for _, e := range want {
			ws = append(ws, e)
		}
		tree.Sort(ws)
		got := l.sorted()
		if len(got) != len(ws) || l.len() != len(ws) {
			t.Fatalf("round %d: %d entries (len %d), want %d", round, len(got), l.len(), len(ws))
		}
		for i := range ws {
			if got[i] != ws[i] {
				t.Fatalf("round %d: entry %d is %q (%p), want %q (%p)", round, i, got[i].Path(), got[i], ws[i].Path(), ws[i])
			}
		}
		for p, e := range want {
			if l.get(p) != e {
				t.Fatalf("round %d: get(%q) is not the last entry added", round, p)
			}
		}
	}
}

// Sorting the runs of keys on several goroutines gives the order one
// goroutine gives, whether the runs start at the first eight bytes or
// only deeper (every path under one long prefix).
func TestSortKeysSpread(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, prefix := range []string{"", "opt/openlibrary/", "a"} {
		var es []*tree.Entry
		for range 20000 {
			p := fmt.Sprintf("%sd%02d/s%03d/f%d", prefix, rng.IntN(40), rng.IntN(300), rng.IntN(50))
			if rng.IntN(5) == 0 {
				p = p[:strings.LastIndexByte(p, '/')] // a directory, and paths of different lengths
			}
			es = append(es, (&tree.Entry{}).WithPath(p)) // some paths twice: added order breaks the tie
		}
		keys := func() []sortKey {
			ks := make([]sortKey, len(es))
			for i, e := range es {
				ks[i] = sortKey{0, i, e}
			}
			return ks
		}
		one, spread := keys(), keys()
		sortKeys(one, 0, 1)
		sortKeys(spread, 0, 4)
		for i := range one {
			if one[i].e != spread[i].e {
				t.Fatalf("prefix %q: key %d is %q (added %d) on 4 goroutines, %q (added %d) on one", prefix, i, spread[i].e.Path(), spread[i].i, one[i].e.Path(), one[i].i)
			}
		}
		for i := 1; i < len(one); i++ {
			if c := tree.Compare(one[i-1].e.Path(), one[i].e.Path()); c > 0 || c == 0 && one[i-1].i > one[i].i {
				t.Fatalf("prefix %q: %q (added %d) before %q (added %d)", prefix, one[i-1].e.Path(), one[i-1].i, one[i].e.Path(), one[i].i)
			}
		}
	}
}
