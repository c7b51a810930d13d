package manifest

import (
	"bytes"
	"encoding/json"
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
	i := bytes.Index(data, entriesKey)
	if i < 0 {
		return nil, false
	}
	p := data[i+len(entriesKey):]
	if bytes.HasPrefix(p, []byte("]")) {
		return []Chunk{}, true
	}
	if !bytes.HasPrefix(p, []byte("\n")) {
		return nil, false
	}
	p = p[1:]
	chunks = make([]Chunk, 0, len(p)/256) // entries run to a few hundred bytes
	for {
		if !bytes.HasPrefix(p, chunkStart) {
			return nil, false
		}
		end := chunkEndIn(p)
		if end < 0 {
			return nil, false
		}
		raw := p[:end]
		q := p[len(chunkStart):]
		nl := bytes.IndexByte(q, '\n')
		if nl < 2 || q[nl-1] != ',' || q[0] != '"' || q[nl-2] != '"' {
			return nil, false
		}
		quoted := q[:nl-1]
		var path string
		if bytes.IndexByte(quoted, '\\') < 0 {
			// Like Raw, the path shares data's memory instead of copying
			// it: a tree's worth of small strings was a fifth of the cost.
			path = unsafe.String(&quoted[1], len(quoted)-2)
		} else if json.Unmarshal(quoted, &path) != nil {
			return nil, false
		}
		if n := len(chunks); n > 0 && !tree.Less(chunks[n-1].Path, path) {
			return nil, false // not in tree order: not written by olimage
		}
		chunks = append(chunks, Chunk{Path: path, Raw: raw})
		p = p[len(raw):]
		switch {
		case bytes.HasPrefix(p, []byte(",\n")):
			p = p[2:]
		case bytes.HasPrefix(p, []byte("\n  ]")):
			return chunks, true
		default:
			return nil, false
		}
	}
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

// Head reads the fields of a plan, image manifest or sidecar that come
// before its entries, without decoding the entries. For a sidecar it
// returns the embedded manifest's head and the manifest's own bytes.
func Head(data []byte) (schema string, head *Image, body []byte, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", nil, nil, fmt.Errorf("not a JSON object")
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", nil, nil, err
		}
		key, _ := t.(string)
		switch key {
		case "entries":
			head = &Image{}
			b, _ := json.Marshal(fields)
			if err := json.Unmarshal(b, head); err != nil {
				return "", nil, nil, err
			}
			if d, ok := fields["digest"]; ok && head.TreeDigest == "" {
				json.Unmarshal(d, &head.TreeDigest) // a plan calls it digest
			}
			return head.Schema, head, data, nil
		case "manifest": // a sidecar: the manifest follows, verbatim
			if s, _ := fields["schema"]; string(s) != `"`+SidecarSchema+`"` {
				return "", nil, nil, fmt.Errorf("a \"manifest\" key outside a sidecar")
			}
			rest := data[dec.InputOffset():]
			rest = rest[bytes.IndexByte(rest, '{'):]
			_, h, _, err := Head(rest)
			return SidecarSchema, h, rest, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", nil, nil, err
		}
		fields[key] = v
	}
	return "", nil, nil, fmt.Errorf("no entries")
}
