package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unsafe"

	"github.com/internetarchive/olimage/tree"
)

// Chunk is one entry of a manifest as olimage wrote it: its path and its
// exact bytes. Two chunks with equal bytes describe equal entries, so two
// manifests can be compared without decoding what they share. Path and
// Raw share the memory of the document they were split from: they are
// valid as long as it is, and must not be kept beyond it.
type Chunk struct {
	Path string
	Raw  []byte
}

var (
	entriesKey = []byte("\n  \"entries\": [")
	chunkStart = []byte("    {\n      \"path\": ")
	chunkEnd   = []byte("\n    }")
)

// Chunks splits a plan, image manifest or sidecar written by olimage into
// its entries, in tree order. It relies on the layout writeDoc produces
// (one entry per indented object, path first); ok is false for any other
// layout, and the caller then decodes the document as JSON.
func Chunks(data []byte) (chunks []Chunk, ok bool) {
	cur, ok := entries(data)
	if !ok {
		return nil, false
	}
	chunks = make([]Chunk, 0, len(cur.rest)/256) // entries run to a few hundred bytes
	for !cur.done {
		c, ok := cur.next()
		if !ok {
			return nil, false
		}
		if n := len(chunks); n > 0 && !tree.Less(chunks[n-1].Path, c.Path) {
			return nil, false // not in tree order: not written by olimage
		}
		chunks = append(chunks, c)
	}
	return chunks, true
}

// Chunked reports whether data looks like a document olimage wrote, whose
// entries Chunks and Differing can split without decoding. It reads only
// up to the first entry: they may still refuse the rest.
func Chunked(data []byte) bool {
	c, ok := entries(data)
	return ok && (c.done || bytes.HasPrefix(c.rest, chunkStart))
}

// cursor reads a document's entries one at a time.
type cursor struct {
	rest []byte // from the next entry on
	done bool   // no entries left
}

// entries returns a cursor at the first entry of data's entries array.
func entries(data []byte) (cursor, bool) {
	i := bytes.Index(data, entriesKey)
	if i < 0 {
		return cursor{}, false
	}
	p := data[i+len(entriesKey):]
	if bytes.HasPrefix(p, []byte("]")) {
		return cursor{done: true}, true
	}
	if !bytes.HasPrefix(p, []byte("\n")) {
		return cursor{}, false
	}
	return cursor{rest: p[1:]}, true
}

// next returns the entry at the cursor and moves past it.
func (c *cursor) next() (Chunk, bool) {
	p := c.rest
	if !bytes.HasPrefix(p, chunkStart) {
		return Chunk{}, false
	}
	end := chunkEndIn(p)
	if end < 0 {
		return Chunk{}, false
	}
	raw := p[:end]
	q := p[len(chunkStart):]
	nl := bytes.IndexByte(q, '\n')
	if nl < 3 || q[nl-1] != ',' || q[0] != '"' || q[nl-2] != '"' {
		return Chunk{}, false
	}
	quoted := q[:nl-1]
	var path string
	if plainJSON(quoted[1 : len(quoted)-1]) {
		// Like Raw, the path shares data's memory instead of copying
		// it: a tree's worth of small strings was a fifth of the cost.
		// Splitting a 20k-entry plan: 37 ms and 1.7 MB against 45 ms and
		// 3.9 MB with each path copied (BenchmarkChunks,
		// BenchmarkChunksCopy, means of four alternating runs).
		path = unsafe.String(&quoted[1], len(quoted)-2)
	} else if json.Unmarshal(quoted, &path) != nil {
		return Chunk{}, false
	}
	p = p[len(raw):]
	switch {
	case bytes.HasPrefix(p, entrySep):
		c.rest = p[len(entrySep):]
	case bytes.HasPrefix(p, []byte("\n  ]")):
		c.rest, c.done = nil, true
	default:
		return Chunk{}, false
	}
	return Chunk{Path: path, Raw: raw}, true
}

// plainJSON reports whether b is the inside of a JSON string as it is,
// with nothing escaped: no quote, backslash or control byte.
func plainJSON(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// entrySep is what follows an entry that is not the last.
var entrySep = []byte(",\n")

// Differing walks the entries of two documents olimage wrote side by side
// and returns those that are not the same on both sides, byte for byte,
// in tree order: what Chunks of both would leave after dropping the
// entries equal at the same path. Runs of entries that are identical are
// passed over by comparing bytes, without splitting them into entries,
// so two releases that share most of a large tree compare at the speed
// of memory: two 20k-entry plans that differ in one entry in under 20 ms,
// against 2.3 s decoding both with encoding/json (BenchmarkDiffering,
// BenchmarkDecodeBoth). ok is false for any layout Chunks would refuse, and when
// the entries read are not in tree order.
func Differing(a, b []byte) (da, db []Chunk, ok bool) {
	ca, okA := entries(a)
	cb, okB := entries(b)
	if !okA || !okB {
		return nil, nil, false
	}
	var ea, eb Chunk // the entry read but not yet placed, on each side
	var haveA, haveB bool
	var lastA, lastB string
	read := func(c *cursor, last *string) (Chunk, bool) {
		e, ok := c.next()
		if ok && *last != "" && !tree.Less(*last, e.Path) {
			ok = false // not in tree order: not written by olimage
		}
		*last = e.Path
		return e, ok
	}
	for {
		if !haveA && !haveB && !ca.done && !cb.done {
			// Pass over whole entries both sides share. The shared bytes
			// start at an entry on both sides, so entries end at the same
			// places in them.
			n := sharedPrefix(ca.rest, cb.rest)
			if k := bytes.LastIndex(ca.rest[:n], []byte("\n    },\n")); k >= 0 {
				k += len("\n    },\n")
				ca.rest, cb.rest = ca.rest[k:], cb.rest[k:]
				lastA, lastB = "", "" // the order of what is passed over is the same on both sides
			}
		}
		if !haveA && !ca.done {
			if ea, haveA = read(&ca, &lastA); !haveA {
				return nil, nil, false
			}
		}
		if !haveB && !cb.done {
			if eb, haveB = read(&cb, &lastB); !haveB {
				return nil, nil, false
			}
		}
		switch {
		case !haveA && !haveB:
			return da, db, true
		case !haveB || haveA && tree.Less(ea.Path, eb.Path):
			da, haveA = append(da, ea), false
		case !haveA || tree.Less(eb.Path, ea.Path):
			db, haveB = append(db, eb), false
		default:
			if !bytes.Equal(ea.Raw, eb.Raw) {
				da, db = append(da, ea), append(db, eb)
			}
			haveA, haveB = false, false
		}
	}
}

// sharedPrefix returns how many bytes a and b start with in common.
func sharedPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	i := 0
	// Large blocks first, where bytes.Equal runs at memory speed, then
	// smaller ones to close in on the first difference.
	for _, step := range []int{4096, 64} {
		for i+step <= n && bytes.Equal(a[i:i+step], b[i:i+step]) {
			i += step
		}
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// chunkEndIn returns the length of the entry p starts with: up to its
// closing brace, the first '}' that opens a line indented as entries are
// (a '}' in a string never does: JSON escapes newlines). Searching for
// the rare '}' is faster than for the line break before it, which every
// field of the entry ends with.
func chunkEndIn(p []byte) int {
	indent := len(chunkEnd) - 1 // the line break and spaces before the brace
	for off := 0; ; {
		k := bytes.IndexByte(p[off:], '}')
		if k < 0 {
			return -1
		}
		k += off
		if k >= indent && bytes.Equal(p[k-indent:k], chunkEnd[:indent]) {
			return k + 1
		}
		off = k + 1
	}
}

// Decode decodes one chunk into a tree entry (without content).
func (c Chunk) Decode() (*tree.Entry, error) {
	var m Entry
	if err := json.Unmarshal(c.Raw, &m); err != nil {
		return nil, fmt.Errorf("manifest entry %s: %w", c.Path, err)
	}
	return ToEntry(m)
}

// Head reads the fields of a plan, image manifest or sidecar other than
// its entries, without decoding the entries. olimage writes "schema" first
// and the entries last, so Head reads only up to the entries; in a
// document written otherwise, whose schema comes after them, it skips
// over the entries (one pass, none decoded) to find it. For a sidecar it
// returns the embedded manifest's head and the manifest's own bytes.
func Head(data []byte) (schema string, head *Manifest, body []byte, err error) {
	return readHead(data, false)
}

// readHead is Head; embedded is set for the manifest inside a sidecar,
// which cannot itself be a sidecar, so nesting stops at one level.
func readHead(data []byte, embedded bool) (string, *Manifest, []byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", nil, nil, fmt.Errorf("not a JSON object")
	}
	fields := map[string]json.RawMessage{}
	entries := false
	var inner json.RawMessage // a sidecar's manifest, met before its schema
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", nil, nil, err
		}
		key, _ := t.(string)
		_, known := fields["schema"]
		switch {
		case key == "entries" && known:
			return headOf(fields, data)
		case key == "manifest" && known && !embedded: // a sidecar: the manifest follows, verbatim
			if !isSidecar(fields) {
				return "", nil, nil, errNotSidecar
			}
			rest := data[dec.InputOffset():]
			i := bytes.IndexByte(rest, '{')
			if i < 0 {
				return "", nil, nil, fmt.Errorf("a sidecar's manifest is not a JSON object")
			}
			rest = rest[i:]
			_, h, _, err := readHead(rest, true)
			return SidecarSchema, h, rest, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", nil, nil, err
		}
		switch {
		case key == "entries":
			entries = true
		case key == "manifest" && !embedded:
			inner = v
		default:
			fields[key] = v
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return "", nil, nil, err
	}
	switch {
	case inner != nil && !isSidecar(fields):
		return "", nil, nil, errNotSidecar
	case inner != nil:
		_, h, _, err := readHead(inner, true)
		return SidecarSchema, h, inner, err
	case entries:
		return headOf(fields, data)
	}
	return "", nil, nil, fmt.Errorf("no entries")
}

var errNotSidecar = errors.New(`a "manifest" key outside a sidecar`)

func isSidecar(fields map[string]json.RawMessage) bool {
	var s string
	json.Unmarshal(fields["schema"], &s)
	return s == SidecarSchema || s == SidecarSchemaV1
}

// headOf decodes the fields of a document other than its entries.
func headOf(fields map[string]json.RawMessage, data []byte) (string, *Manifest, []byte, error) {
	head := &Manifest{}
	b, _ := json.Marshal(fields)
	if err := json.Unmarshal(b, head); err != nil {
		return "", nil, nil, err
	}
	if d, ok := fields["digest"]; ok && head.TreeDigest == "" {
		json.Unmarshal(d, &head.TreeDigest) // a plan calls it digest
	}
	return head.Schema, head, data, nil
}
