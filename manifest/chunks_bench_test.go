package manifest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/tree"
)

// benchPlans are two plans of 20k entries that differ in one, as two
// releases of a role do.
func benchPlans(b *testing.B) (x, y []byte) {
	b.Helper()
	es := benchEntries()
	var all []*tree.Entry
	for k := range 20 {
		for _, e := range es {
			c := *e
			c.SetPath(strings.Replace(c.Path(), "site-packages/", "site-packages/"+string(rune('a'+k))+"/", 1))
			all = append(all, &c)
		}
	}
	x = planDoc(b, all)
	all[len(all)/2].Size++
	return x, planDoc(b, all)
}

// Comparing two plans: Differing passes over what they share, against
// decoding both with encoding/json and comparing entries.
func BenchmarkDiffering(b *testing.B) {
	x, y := benchPlans(b)
	b.ResetTimer()
	for range b.N {
		da, db, ok := Differing(x, y)
		if !ok || len(da) != 1 || len(db) != 1 {
			b.Fatalf("%d and %d differ (ok %v), want 1 and 1", len(da), len(db), ok)
		}
	}
}

func BenchmarkDecodeBoth(b *testing.B) {
	x, y := benchPlans(b)
	b.ResetTimer()
	for range b.N {
		var px, py Plan
		if err := json.Unmarshal(x, &px); err != nil {
			b.Fatal(err)
		}
		if err := json.Unmarshal(y, &py); err != nil {
			b.Fatal(err)
		}
		n := 0
		for i := range px.Entries {
			if a, b := px.Entries[i], py.Entries[i]; a.Path != b.Path || a.Size != b.Size || a.SHA256 != b.SHA256 || a.Mode != b.Mode {
				n++
			}
		}
		if n != 1 {
			b.Fatalf("%d entries differ, want 1", n)
		}
	}
}

// Splitting a plan into chunks whose paths share the document's memory
// (unsafe.String), against the same with each path copied, as the plain
// string(b) conversion would.
func BenchmarkChunks(b *testing.B) {
	x, _ := benchPlans(b)
	b.ResetTimer()
	for range b.N {
		if _, ok := Chunks(x); !ok {
			b.Fatal("refused")
		}
	}
}

var sink string

func BenchmarkChunksCopy(b *testing.B) {
	x, _ := benchPlans(b)
	b.ResetTimer()
	for range b.N {
		cs, ok := Chunks(x)
		if !ok {
			b.Fatal("refused")
		}
		for _, c := range cs {
			sink = strings.Clone(c.Path)
		}
	}
}
