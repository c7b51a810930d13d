package manifest

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/internetarchive/olimage/tree"
)

// viaJSON is what appendEntry must equal: encoding/json's indented output.
func viaJSON(t testing.TB, e *tree.Entry) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent(entryPrefix, entryIndent)
	if err := enc.Encode(FromEntry(e)); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func checkEntry(t *testing.T, e *tree.Entry) {
	t.Helper()
	want := viaJSON(t, e)
	if got := appendEntry(nil, e); !bytes.Equal(got, want) {
		t.Fatalf("entry %+v:\ngot  %s\nwant %s", e, got, want)
	}
}

// randString mixes what a path, owner or xattr name may hold with what
// JSON must escape: quotes, backslashes, control bytes, HTML characters,
// U+2028, invalid UTF-8.
func randString(r *rand.Rand) string {
	pieces := []string{"", "a", "opt/openlibrary", "é", "日本", "\"", "\\", "\n", "\t", "\b", "\f", "\r", "\x00", "\x1f", "\x7f",
		"<", ">", "&", "\u2028", "\u2029", "\xff", "\xe2\x80", "\xed\xa0\x80", "\U0001F600", " ", "/"}
	var b []byte
	for range r.IntN(6) {
		b = append(b, pieces[r.IntN(len(pieces))]...)
	}
	return string(b)
}

func TestAppendEntryMatchesJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	types := []tree.Type{tree.File, tree.Dir, tree.Symlink, tree.Hardlink}
	for range 20000 {
		e := (&tree.Entry{
			Type: types[r.IntN(len(types))], Mode: uint32(r.IntN(0o10000)),
			UID: r.Uint32(), GID: uint32(r.IntN(3)),
			Size: r.Int64N(3) * r.Int64(), Target: randString(r),
			ModTime: r.Int64() - r.Int64(), Implicit: r.IntN(2) == 0,
		}).WithPath(randString(r) + "x")
		e.SetOverlay(randString(r))
		copy(e.Digest[:], randString(r)) // zero (none) now and then
		e.SetNames(randString(r), randString(r))
		e.SetRules(randString(r), randString(r))
		for range r.IntN(3) {
			e.SetShadowed(append(e.Shadowed(), randString(r)))
		}
		for range r.IntN(4) {
			v := make([]byte, r.IntN(5))
			for k := range v {
				v[k] = byte(r.IntN(256))
			}
			// Names repeat now and then: the last value wins, as in a map.
			e.SetXattrs(append(e.Xattrs(), tree.Xattr{Name: []string{"user.a", "user.b", randString(r)}[r.IntN(3)], Value: v}))
		}
		checkEntry(t, e)
	}
}

func FuzzAppendEntry(f *testing.F) {
	f.Add("opt/a", "root", "sha", "target", "overlay", "user.x", []byte("v"), uint32(0o755), int64(12), int64(1700000000))
	f.Add("<&>\u2028", "\xff", "\"", "\\", "\n", "\x00", []byte{}, uint32(0o7777), int64(-1), int64(-5))
	f.Fuzz(func(t *testing.T, path, owner, digest, target, overlay, xname string, xval []byte, mode uint32, size, mtime int64) {
		e := (&tree.Entry{Type: tree.File, Mode: mode & tree.ModeMask,
			Size: size, Target: target, ModTime: mtime}).WithPath(path)
		e.SetNames(owner, owner)
		e.SetOverlay(overlay)
		copy(e.Digest[:], digest)
		e.SetShadowed([]string{overlay, owner})
		e.SetXattrs([]tree.Xattr{{Name: xname, Value: xval}})
		checkEntry(t, e)
	})
}
