package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
				if err != nil || e.Path != tc.entry.Path {
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
	tr, err := tree.New([]*tree.Entry{
		{Path: "a \"q\"\n", Type: tree.File, Mode: 0o4755, UID: 7, GID: 8, ModTime: -1, Size: 12, Digest: sha256.Sum256([]byte("ab")), Target: ""},
		(&tree.Entry{Path: "a/l", Type: tree.Symlink, Mode: 0o777, Target: "t\u00e9\x01"}).WithXattrs(tree.Xattr{Name: "user.x", Value: []byte{0, 255}}),
		{Path: "d", Type: tree.Dir, Mode: 0o5},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, e := range tr.Entries {
		fmt.Fprintf(h, "%s %s %04o %d %d %d %d %s %q\n", strconv.Quote(e.Path), e.Type, e.Mode, e.UID, e.GID, e.ModTime, e.Size, e.Digest, e.Target)
		for _, x := range e.Xattrs() {
			fmt.Fprintf(h, "\t%q %x\n", x.Name, x.Value)
		}
	}
	if got, want := TreeDigest(tr), hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("TreeDigest = %s, want %s", got, want)
	}
}
