package manifest

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/tree"
)

func sampleTree(t *testing.T) *tree.Tree {
	t.Helper()
	tr, err := tree.New([]*tree.Entry{
		{Path: "etc", Type: tree.Dir, Mode: 0o755},
		{Path: "etc/a \"quoted\" <name>", Type: tree.File, Mode: 0o644, Size: 3, Digest: "abc"},
		{Path: "etc/l", Type: tree.Symlink, Mode: 0o777, Target: "/opt/x"},
		// Braces where an entry's end is searched for: in strings, and
		// closing an xattrs object.
		{Path: "etc/m}", Type: tree.Symlink, Mode: 0o777, Target: "    }\n    }", Xattrs: []tree.Xattr{{Name: "user.}", Value: []byte("}")}}},
		{Path: "opt", Type: tree.Dir, Mode: 0o755, Xattrs: []tree.Xattr{{Name: "user.k", Value: []byte{0, 1}}}},
		{Path: "opt-b", Type: tree.Dir, Mode: 0o700, UID: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestChunksOfWrittenDocuments(t *testing.T) {
	tr := sampleTree(t)
	var plan, img, side bytes.Buffer
	if err := WritePlan(&plan, Plan{Schema: PlanSchema, Role: "r"}, tr); err != nil {
		t.Fatal(err)
	}
	sp, err := Spool(Image{Schema: ImageSchema, Role: "r", TreeDigest: "d"}, tr)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	rc, _ := sp.Open()
	img.ReadFrom(rc)
	if err := WriteSidecar(&side, ImageFile{File: "x.img"}, sp); err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string][]byte{"plan": plan.Bytes(), "image": img.Bytes(), "sidecar": side.Bytes()} {
		t.Run(name, func(t *testing.T) {
			schema, head, body, err := Head(doc)
			if err != nil || head == nil || head.Role != "r" {
				t.Fatalf("Head: schema %q head %+v err %v", schema, head, err)
			}
			chunks, ok := Chunks(body)
			if !ok {
				t.Fatal("Chunks refused a document olimage wrote")
			}
			if len(chunks) != tr.Len() {
				t.Fatalf("%d chunks, want %d", len(chunks), tr.Len())
			}
			for i, c := range chunks {
				e, err := c.Decode()
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(FromEntry(tr.Entries[i]), FromEntry(e)); d != "" || c.Path != tr.Entries[i].Path {
					t.Errorf("chunk %d (%s) (-want +got):\n%s", i, c.Path, d)
				}
			}
		})
	}
}

func TestChunksRefusesOtherLayouts(t *testing.T) {
	var buf bytes.Buffer
	WritePlan(&buf, Plan{Schema: PlanSchema}, sampleTree(t))
	var v any
	json.Unmarshal(buf.Bytes(), &v)
	compact, _ := json.Marshal(v)
	swapped := bytes.Replace(buf.Bytes(), []byte(`"path": "etc"`), []byte(`"path": "zzz"`), 1)
	for name, doc := range map[string][]byte{"compact": compact, "out of order": swapped, "cut": buf.Bytes()[:buf.Len()/2], "empty": nil} {
		if _, ok := Chunks(doc); ok {
			t.Errorf("%s: Chunks accepted it", name)
		}
	}
}

func FuzzChunks(f *testing.F) {
	var buf bytes.Buffer
	WritePlan(&buf, Plan{Schema: PlanSchema}, sampleTree(&testing.T{}))
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		chunks, ok := Chunks(data)
		if !ok {
			return
		}
		for i, c := range chunks {
			if i > 0 && !tree.Less(chunks[i-1].Path, c.Path) {
				t.Fatalf("chunks out of order: %q then %q", chunks[i-1].Path, c.Path)
			}
			c.Decode() // may fail; must not panic
		}
		Head(data)
	})
}
