package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/tree"
)

// TestToEntryRefusesPaths checks that a manifest, which may come from any
// image or file, cannot name a path outside the volume.
func TestToEntryRefusesPaths(t *testing.T) {
	tests := []struct {
		name    string
		entry   Entry
		wantErr string
	}{
		{"dot dot", Entry{Path: "opt/../../x", Type: "file", Mode: "0644"}, `"opt/../../x": not a path inside the volume`},
		{"absolute", Entry{Path: "/etc/passwd", Type: "file", Mode: "0644"}, `"/etc/passwd": not a path inside the volume`},
		{"empty element", Entry{Path: "opt//x", Type: "file", Mode: "0644"}, `"opt//x": not a path inside the volume`},
		{"root", Entry{Path: ".", Type: "dir", Mode: "0755"}, `".": not a path inside the volume`},
		{"empty", Entry{Path: "", Type: "dir", Mode: "0755"}, `"": not a path inside the volume`},
		{"hard link out", Entry{Path: "opt/x", Type: "hardlink", Mode: "0644", Target: "../etc/shadow"}, `opt/x: hard link target: "../etc/shadow": not a path inside the volume`},
		{"good", Entry{Path: "opt/x", Type: "hardlink", Mode: "0644", Target: "opt/y"}, ""},
		{"symlink text is not a path", Entry{Path: "opt/l", Type: "symlink", Mode: "0777", Target: "../../etc"}, ""},
		{"sha256 not hex", Entry{Path: "opt/f", Type: "file", Mode: "0644", SHA256: "abc"}, `opt/f: sha256 "abc": not a sha256 in lowercase hex`},
		{"sha256 upper case", Entry{Path: "opt/f", Type: "file", Mode: "0644", SHA256: strings.Repeat("AB", 32)}, `opt/f: sha256 "ABAB`},
		{"sha256", Entry{Path: "opt/f", Type: "file", Mode: "0644", SHA256: strings.Repeat("ab", 32)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := ToEntry(tc.entry)
			if tc.wantErr == "" {
				if err != nil || e.Path() != tc.entry.Path {
					t.Fatalf("got %v, %v; want the entry", e, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestTreeDigestFormat pins the digest to its documented line format, the
// one fmt prints, so that rewriting it for speed cannot change any digest.
func TestTreeDigestFormat(t *testing.T) {
	small, err := tree.New([]*tree.Entry{
		(&tree.Entry{Type: tree.File, Mode: 0o4755, UID: 7, GID: 8, ModTime: -1, Size: 12, Digest: sha256.Sum256([]byte("ab")), Target: ""}).WithPath("a \"q\"\n"),
		(&tree.Entry{Type: tree.Symlink, Mode: 0o777, Target: "t\u00e9\x01"}).WithPath("a/l").WithXattrs(tree.Xattr{Name: "user.x", Value: []byte{0, 255}}),
		(&tree.Entry{Type: tree.Dir, Mode: 0o5}).WithPath("d"),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The lines of a large tree are encoded on every core, in batches:
	// the digest is still that of the lines in order.
	for _, tr := range []*tree.Tree{small, bigTree(t, 9000)} {
		h := sha256.New()
		for _, e := range tr.Entries {
			fmt.Fprintf(h, "%s %s %04o %d %d %d %d %s %q\n", strconv.Quote(e.Path()), e.Type, e.Mode, e.UID, e.GID, e.ModTime, e.Size, e.Digest, e.Target)
			for _, x := range e.Xattrs() {
				fmt.Fprintf(h, "\t%q %x\n", x.Name, x.Value)
			}
		}
		if got, want := TreeDigest(tr), hex.EncodeToString(h.Sum(nil)); got != want {
			t.Errorf("%d entries: TreeDigest = %s, want %s", tr.Len(), got, want)
		}
	}
}

// bigTree is n entries of every type, some with xattrs, in directories of
// 100, after a manifest's own entries.
func bigTree(t testing.TB, n int) *tree.Tree {
	es := []*tree.Entry{
		(&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath(tree.OlimageDir),
		(&tree.Entry{Type: tree.File, Mode: 0o644, Size: 1}).WithPath(tree.OlimageDir + "/manifest.json"),
	}
	for i := range n {
		d := fmt.Sprintf("d%03d", i/100)
		if i%100 == 0 {
			es = append(es, (&tree.Entry{Type: tree.Dir, Mode: 0o755, ModTime: int64(i)}).WithPath(d))
		}
		e := (&tree.Entry{Type: tree.File, Mode: uint32(i) & 0o7777, UID: uint32(i), GID: 3, ModTime: int64(i * 7), Size: int64(i)}).WithPath(fmt.Sprintf("%s/f%d <\"%d\">", d, i, i))
		e.Digest = sha256.Sum256([]byte(e.Path()))
		switch i % 7 {
		case 3:
			e.Type, e.Size, e.Digest, e.Target = tree.Symlink, 0, tree.Digest{}, "../t\u00e9"+strconv.Itoa(i)
		case 5:
			e.SetXattrs([]tree.Xattr{{Name: "user.n", Value: []byte{byte(i), 0}}})
		}
		e.SetNames("u"+strconv.Itoa(i%3), "g")
		es = append(es, e)
	}
	tr, err := tree.New(es)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// A manifest's entries are encoded on every core, in batches; the
// document is still the one encoding/json writes, the manifest's own
// entries left out.
func TestWriteDocMatchesJSON(t *testing.T) {
	for _, n := range []int{0, 1, 9000} {
		tr := bigTree(t, n)
		doc := Manifest{Schema: ImageSchema, Role: "r", Inputs: []tree.Input{{Name: "i"}}, Entries: []Entry{}}
		for _, e := range tr.Entries {
			if e.Path() != tree.OlimageDir && !strings.HasPrefix(e.Path(), tree.OlimageDir+"/") {
				doc.Entries = append(doc.Entries, FromEntry(e))
			}
		}
		want, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		var got bytes.Buffer
		doc.Entries = nil
		if err := writeDoc(&got, doc, tr); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("%d entries: writeDoc wrote %d bytes differing from encoding/json's %d", n, got.Len(), len(want))
		}
		if size, err := count(io.Discard, doc, tr); err != nil || size != int64(len(want)) {
			t.Fatalf("%d entries: count = %d, %v; want %d", n, size, err, len(want))
		}
	}
}
