package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/tree"
)

func sampleTree(t *testing.T) *tree.Tree {
	t.Helper()
	tr, err := tree.New([]*tree.Entry{
		(&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath("etc"),
		(&tree.Entry{Type: tree.File, Mode: 0o644, Size: 3, Digest: sha256.Sum256([]byte("abc"))}).WithPath("etc/a \"quoted\" <name>"),
		(&tree.Entry{Type: tree.Symlink, Mode: 0o777, Target: "/opt/x"}).WithPath("etc/l"),
		// Braces where an entry's end is searched for: in strings, and
		// closing an xattrs object.
		(&tree.Entry{Type: tree.Symlink, Mode: 0o777, Target: "    }\n    }"}).WithPath("etc/m}").WithXattrs(tree.Xattr{Name: "user.}", Value: []byte("}")}),
		(&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath("opt").WithXattrs(tree.Xattr{Name: "user.k", Value: []byte{0, 1}}),
		(&tree.Entry{Type: tree.Dir, Mode: 0o700, UID: 5}).WithPath("opt-b"),
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
	sp, err := Spool(Manifest{Schema: ImageSchema, Role: "r", TreeDigest: "d"}, tr)
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
				if d := cmp.Diff(FromEntry(tr.Entries[i]), FromEntry(e)); d != "" || c.Path != tr.Entries[i].Path() {
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

// A path line that is not a whole JSON string is refused, not read past
// its quotes, and one with escapes is decoded.
func TestChunksPathLine(t *testing.T) {
	doc := func(path string) []byte {
		return []byte("\n  \"entries\": [\n    {\n      \"path\": " + path + ",\n      \"type\": \"file\"\n    }\n  ]\n}\n")
	}
	for _, bad := range []string{`"`, `"a"b"`, "\"a\x01\"", `"a\"`, `x"a"`} {
		if c, ok := Chunks(doc(bad)); ok {
			t.Errorf("path line %q: accepted, as %q", bad, c[0].Path)
		}
	}
	for line, want := range map[string]string{`""`: "", `"opt/a b"`: "opt/a b", `"opt/\u00e9\t"`: "opt/\u00e9\t"} {
		c, ok := Chunks(doc(line))
		if !ok || len(c) != 1 || c[0].Path != want {
			t.Errorf("path line %q: got %v, %v; want the path %q", line, c, ok, want)
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

// planDoc is the plan of role r whose tree has the entries es.
func planDoc(tb testing.TB, es []*tree.Entry) []byte {
	tb.Helper()
	tr, err := tree.New(es)
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WritePlan(&buf, Plan{Schema: PlanSchema, Role: "r"}, tr); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// Differing gives the entries that Chunks of both documents would leave
// once the entries equal at the same path are dropped.
func TestDifferingMatchesChunks(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 4))
	for round := range 300 {
		var a, b []*tree.Entry
		n := r.IntN(60)
		for i := range n {
			p := fmt.Sprintf("opt/d%02d/f%03d", i%7, i)
			e := (&tree.Entry{Type: tree.File, Mode: 0o644, Size: int64(i), Digest: tree.Digest{1}}).WithPath(p)
			switch r.IntN(10) {
			case 0: // only in a
				a = append(a, e)
			case 1: // only in b
				b = append(b, e)
			case 2: // changed
				c := *e
				c.Digest = tree.Digest{2}
				a, b = append(a, e), append(b, &c)
			default:
				a, b = append(a, e), append(b, e)
			}
		}
		da, db := planDoc(t, a), planDoc(t, b)
		ca, _ := Chunks(da)
		cb, _ := Chunks(db)
		wantA, wantB := differingChunks(ca, cb)
		ga, gb, ok := Differing(da, db)
		if !ok {
			t.Fatalf("round %d: Differing refused two documents olimage wrote", round)
		}
		if d := cmp.Diff(wantA, chunkPaths(ga)); d != "" {
			t.Fatalf("round %d: a side (-want +got):\n%s", round, d)
		}
		if d := cmp.Diff(wantB, chunkPaths(gb)); d != "" {
			t.Fatalf("round %d: b side (-want +got):\n%s", round, d)
		}
	}
}

// differingChunks is Differing's definition: the paths of the entries of
// ca and cb, both in tree order, that are not equal at the same path.
func differingChunks(ca, cb []Chunk) (wantA, wantB []string) {
	i, j := 0, 0
	for i < len(ca) || j < len(cb) {
		switch {
		case j == len(cb) || i < len(ca) && tree.Less(ca[i].Path, cb[j].Path):
			wantA = append(wantA, ca[i].Path)
			i++
		case i == len(ca) || tree.Less(cb[j].Path, ca[i].Path):
			wantB = append(wantB, cb[j].Path)
			j++
		default:
			if !bytes.Equal(ca[i].Raw, cb[j].Raw) {
				wantA, wantB = append(wantA, ca[i].Path), append(wantB, cb[j].Path)
			}
			i++
			j++
		}
	}
	return wantA, wantB
}

func chunkPaths(cs []Chunk) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Path)
	}
	return out
}

// Differing reads two documents from images, which may be anything: it
// must not panic, and where Chunks accepts both it must agree with them.
func FuzzDiffering(f *testing.F) {
	var a, b bytes.Buffer
	tr := sampleTree(&testing.T{})
	WritePlan(&a, Plan{Schema: PlanSchema}, tr)
	tr.Entries[len(tr.Entries)-1].Mode ^= 0o111
	WritePlan(&b, Plan{Schema: PlanSchema}, tr)
	f.Add(a.Bytes(), b.Bytes())
	f.Add(a.Bytes(), a.Bytes())
	f.Add(a.Bytes(), []byte(nil))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ga, gb, ok := Differing(a, b)
		ca, okA := Chunks(a)
		cb, okB := Chunks(b)
		if !okA || !okB {
			return
		}
		if !ok {
			t.Fatal("Differing refused two documents Chunks accepts")
		}
		wantA, wantB := differingChunks(ca, cb)
		if d := cmp.Diff(wantA, chunkPaths(ga)); d != "" {
			t.Fatalf("a side (-want +got):\n%s", d)
		}
		if d := cmp.Diff(wantB, chunkPaths(gb)); d != "" {
			t.Fatalf("b side (-want +got):\n%s", d)
		}
	})
}

func TestDifferingRefuses(t *testing.T) {
	var buf bytes.Buffer
	WritePlan(&buf, Plan{Schema: PlanSchema}, sampleTree(t))
	good := buf.Bytes()
	// b lists two entries the other way round, in a part that differs.
	swapped := bytes.Replace(good, []byte(`"path": "etc"`), []byte(`"path": "zzz"`), 1)
	for name, b := range map[string][]byte{"out of order": swapped, "cut": good[:len(good)/2], "not olimage's": []byte(`{"entries": []}`)} {
		if _, _, ok := Differing(good, b); ok {
			t.Errorf("%s: Differing accepted it", name)
		}
	}
	if da, db, ok := Differing(good, good); !ok || len(da)+len(db) != 0 {
		t.Errorf("a document against itself: %d, %d differing, ok %v", len(da), len(db), ok)
	}
}

// headDocs are documents whose schema is not where olimage writes it:
// after the other fields, after the entries, or after a sidecar's
// manifest.
var headDocs = []struct {
	name, doc, schema, role string
}{
	{"first", `{"schema": "olimage.plan/v1", "role": "r", "entries": []}`, PlanSchema, "r"},
	{"second", `{"role": "r", "schema": "olimage.plan/v1", "entries": []}`, PlanSchema, "r"},
	{"after entries", `{"role": "r", "entries": [{"path": "a"}], "schema": "olimage.manifest/v1"}`, ImageSchema, "r"},
	{"last, role after entries", `{"entries": [], "role": "r", "schema": "olimage.plan/v1"}`, PlanSchema, "r"},
	{"sidecar, schema after manifest", `{"image": {"file": "x"}, "manifest": {"schema": "olimage.manifest/v1", "role": "r", "entries": []}, "schema": "olimage.sidecar/v2"}`, SidecarSchema, "r"},
	{"sidecar v1, schema after manifest", `{"manifest": {"schema": "olimage.manifest/v1", "role": "r", "entries": []}, "schema": "olimage.sidecar/v1"}`, SidecarSchema, "r"},
	{"sidecar, its manifest's schema last", `{"schema": "olimage.sidecar/v2", "manifest": {"role": "r", "entries": [], "schema": "olimage.manifest/v1"}}`, SidecarSchema, "r"},
}

func TestHeadSchemaAnywhere(t *testing.T) {
	for _, tc := range headDocs {
		t.Run(tc.name, func(t *testing.T) {
			schema, head, _, err := Head([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if schema != tc.schema || head.Role != tc.role {
				t.Errorf("got schema %q role %q, want %q %q", schema, head.Role, tc.schema, tc.role)
			}
			if tc.schema == SidecarSchema && head.Schema != ImageSchema {
				t.Errorf("embedded manifest's schema %q, want %q", head.Schema, ImageSchema)
			}
		})
	}
	for name, doc := range map[string]string{
		"manifest outside a sidecar": `{"manifest": {"schema": "olimage.manifest/v1", "entries": []}, "schema": "olimage.plan/v1"}`,
		"sidecar in a sidecar":       `{"schema": "olimage.sidecar/v2", "manifest": {"schema": "olimage.sidecar/v2", "manifest": {"schema": "olimage.manifest/v1", "entries": []}}}`,
		"cut after the entries":      `{"entries": [], "schema": "olimage.plan/v1"`,
		"no entries":                 `{"schema": "olimage.plan/v1"}`,
	} {
		if s, _, _, err := Head([]byte(doc)); err == nil {
			t.Errorf("%s: accepted, schema %q", name, s)
		}
	}
}

// FuzzHead checks that Head never panics, and that the schema it gives a
// plan or manifest is the one the whole document holds, wherever it is.
func FuzzHead(f *testing.F) {
	var buf bytes.Buffer
	WritePlan(&buf, Plan{Schema: PlanSchema, Role: "r"}, sampleTree(&testing.T{}))
	f.Add(buf.Bytes())
	for _, tc := range headDocs {
		f.Add([]byte(tc.doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		schema, _, _, err := Head(data)
		if err != nil {
			return
		}
		keys, whole, ok := topLevel(data)
		if !ok || keys["schema"] != 1 || keys["manifest"] != 0 {
			return // not JSON, or two schemas that encoding/json and Head may each pick from
		}
		if schema != whole.Schema {
			t.Fatalf("Head gave schema %q, the document holds %q", schema, whole.Schema)
		}
	})
}

// topLevel counts a JSON object's keys "schema" and "manifest" as
// encoding/json matches them (ignoring case), and decodes its schema.
func topLevel(data []byte) (keys map[string]int, doc struct{ Schema string }, ok bool) {
	if json.Unmarshal(data, &doc) != nil {
		return nil, doc, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, doc, false
	}
	keys = map[string]int{}
	for dec.More() {
		t, err := dec.Token()
		var v json.RawMessage
		if err != nil || dec.Decode(&v) != nil {
			return nil, doc, false
		}
		for _, k := range []string{"schema", "manifest"} {
			if strings.EqualFold(t.(string), k) {
				keys[k]++
			}
		}
	}
	return keys, doc, true
}
