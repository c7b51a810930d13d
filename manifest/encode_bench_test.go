package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/internetarchive/olimage/tree"
)

// benchEntries are files as a deploy holds them: long shared prefixes,
// digests, owners.
func benchEntries() []*tree.Entry {
	es := make([]*tree.Entry, 1000)
	for i := range es {
		es[i] = (&tree.Entry{Type: tree.File, Mode: 0o644, UID: 2000, GID: 2000, ModTime: 1704067200,
			Size: 4096, Digest: sha256.Sum256([]byte("4 KiB"))}).WithPath(fmt.Sprintf("opt/openlibrary/deploys/openlibrary/3f9c2e1a7b04/venv/lib/python3.11/site-packages/pkg%d/mod.py", i))
		es[i].SetNames("openlibrary", "openlibrary")
		es[i].SetOverlay("deploy")
	}
	return es
}

// BenchmarkAppendEntry and BenchmarkEntryJSON write the same bytes (the
// tests hold appendEntry to encoding/json's output): the hand-written
// encoder against the standard library's, per 1000 entries.
func BenchmarkAppendEntry(b *testing.B) {
	es := benchEntries()
	var buf []byte
	for range b.N {
		buf = buf[:0]
		for _, e := range es {
			buf = appendEntry(buf, e)
		}
	}
}

func BenchmarkEntryJSON(b *testing.B) {
	es := benchEntries()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent(entryPrefix, entryIndent)
	for range b.N {
		buf.Reset()
		for _, e := range es {
			if err := enc.Encode(FromEntry(e)); err != nil {
				b.Fatal(err)
			}
		}
	}
}
