// Package manifest is the JSON form of a tree: the schema of
// `olimage plan --json` and of the manifests written with an image. It
// converts between that form and package tree; it does not read sources or
// images.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strconv"

	"github.com/internetarchive/olimage/internal/par"
	"github.com/internetarchive/olimage/internal/quote"
	"github.com/internetarchive/olimage/tree"
)

// PlanSchema identifies the document `olimage plan --json` prints. It
// changes only when a field changes meaning or goes away; new fields may
// appear without a change.
const PlanSchema = "olimage.plan/v1"

// Entry is one path of a tree.
type Entry struct {
	Path      string            `json:"path"`
	Type      string            `json:"type"` // file, dir, symlink or hardlink
	Mode      string            `json:"mode"` // octal, four digits
	UID       uint32            `json:"uid"`
	GID       uint32            `json:"gid"`
	Owner     string            `json:"owner,omitempty"`
	Group     string            `json:"group,omitempty"`
	Size      int64             `json:"size,omitempty"`
	SHA256    string            `json:"sha256,omitempty"` // hex, files and hard links
	Target    string            `json:"target,omitempty"` // symlink text, or a hard link's primary path
	Xattrs    map[string]string `json:"xattrs,omitempty"` // name -> base64 value
	MTime     int64             `json:"mtime"`
	Overlay   string            `json:"overlay,omitempty"`
	Shadowed  []string          `json:"shadowed,omitempty"`
	Implicit  bool              `json:"implicit,omitempty"`
	OwnerRule string            `json:"owner_rule,omitempty"`
	ModeRule  string            `json:"mode_rule,omitempty"`
}

// Plan is the document `olimage plan --json` prints.
type Plan struct {
	Schema string       `json:"schema"`
	Fleet  string       `json:"fleet"`
	Role   string       `json:"role"`
	Epoch  int64        `json:"epoch"`
	Digest string       `json:"digest"` // sha256 of the tree, see TreeDigest
	Inputs []tree.Input `json:"inputs"`
	// Activation is what activate will link and make, as the image's
	// manifest records it.
	Activation *Activation   `json:"activation,omitempty"`
	Deploys    []tree.Deploy `json:"deploys,omitempty"`
	Entries    []Entry       `json:"entries"`
}

// FromEntry converts a tree entry.
func FromEntry(e *tree.Entry) Entry {
	m := Entry{
		Path: e.Path(), Type: e.Type.String(), Mode: fmt.Sprintf("%04o", e.Mode),
		UID: e.UID, GID: e.GID, Owner: e.Owner(), Group: e.Group(),
		Size: e.Size, SHA256: e.Digest.String(), Target: e.Target, MTime: e.ModTime,
		Overlay: e.Overlay(), Shadowed: e.Shadowed(), Implicit: e.Implicit,
		OwnerRule: e.OwnerRule(), ModeRule: e.ModeRule(),
	}
	if xs := e.Xattrs(); len(xs) > 0 {
		m.Xattrs = map[string]string{}
		for _, x := range xs {
			m.Xattrs[x.Name] = base64.StdEncoding.EncodeToString(x.Value)
		}
	}
	return m
}

// ToEntry converts back. The entry has no Content.
func ToEntry(m Entry) (*tree.Entry, error) {
	if err := tree.CheckPath(m.Path); err != nil {
		return nil, err
	}
	t, err := tree.ParseType(m.Type)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	mode, err := strconv.ParseUint(m.Mode, 8, 32)
	if err != nil || mode > tree.ModeMask {
		return nil, fmt.Errorf("%s: mode %q is not octal", m.Path, m.Mode)
	}
	if t == tree.Hardlink {
		if err := tree.CheckPath(m.Target); err != nil {
			return nil, fmt.Errorf("%s: hard link target: %w", m.Path, err)
		}
	}
	e := (&tree.Entry{
		Type: t, Mode: uint32(mode), UID: m.UID, GID: m.GID,
		Size: m.Size, Target: m.Target, ModTime: m.MTime,
		Implicit: m.Implicit,
	}).WithPath(m.Path)
	e.SetNames(m.Owner, m.Group)
	e.SetOverlay(m.Overlay)
	if e.Digest, err = tree.ParseDigest(m.SHA256); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Path, err)
	}
	e.SetShadowed(m.Shadowed)
	e.SetRules(m.OwnerRule, m.ModeRule)
	names := make([]string, 0, len(m.Xattrs))
	for name := range m.Xattrs {
		names = append(names, name)
	}
	sort.Strings(names)
	var xs []tree.Xattr
	for _, name := range names {
		v, err := base64.StdEncoding.DecodeString(m.Xattrs[name])
		if err != nil {
			return nil, fmt.Errorf("%s: xattr %s: %w", m.Path, name, err)
		}
		xs = append(xs, tree.Xattr{Name: name, Value: v})
	}
	e.SetXattrs(xs)
	return e, nil
}

// Entries converts a whole tree.
func Entries(t *tree.Tree) []Entry {
	out := make([]Entry, len(t.Entries))
	for i, e := range t.Entries {
		out[i] = FromEntry(e)
	}
	return out
}

// TreeDigest is a content address of a tree: what would land on the
// volume (paths, types, modes, owners, times, contents, targets, xattrs),
// not where it came from.
func TreeDigest(t *tree.Tree) string {
	h := newHash()
	// Encoding the lines is most of the cost, and runs on every core.
	par.Encode(len(t.Entries), encodeBatch, runtime.GOMAXPROCS(0), func(b []byte, k int) []byte {
		return appendDigestLine(b, t.Entries[k])
	}, func(b []byte) { h.Write(b) })
	return h.sum()
}

// encodeBatch is how many entries a worker encodes at a time: a few
// hundred kilobytes of manifest, few enough handoffs not to count.
const encodeBatch = 1024

// appendDigestLine appends e's line of TreeDigest: what fmt's
// "%s %s %04o %d %d %d %d %s %q\n" of the quoted path and the fields
// would print, built without fmt (on a large tree fmt was a tenth of a
// build), then a line per xattr.
func appendDigestLine(b []byte, e *tree.Entry) []byte {
	d, n := e.PathParts()
	b = quote.AppendJoin(b, d, n)
	b = append(b, ' ')
	b = append(b, e.Type.String()...)
	b = append(b, ' ')
	b = appendOctal4(b, e.Mode)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(e.UID), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(e.GID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.ModTime, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Size, 10)
	b = append(b, ' ')
	b = e.Digest.AppendHex(b)
	b = append(b, ' ')
	b = quote.Append(b, e.Target)
	b = append(b, '\n')
	for _, x := range e.Xattrs() {
		b = append(b, '\t')
		b = quote.Append(b, x.Name)
		b = append(b, ' ')
		b = hex.AppendEncode(b, x.Value)
		b = append(b, '\n')
	}
	return b
}

// appendOctal4 appends m in octal, zero-padded to four digits, as %04o.
func appendOctal4(b []byte, m uint32) []byte {
	o := strconv.FormatUint(uint64(m), 8)
	for i := len(o); i < 4; i++ {
		b = append(b, '0')
	}
	return append(b, o...)
}

// WritePlan writes p as indented JSON with the entries of t.
func WritePlan(w io.Writer, p Plan, t *tree.Tree) error {
	p.Entries = nil
	return writeDoc(w, p, t)
}

// writeDoc writes head, a struct whose last field is `Entries` (nil), as
// indented JSON with t's entries written one at a time, so a large tree is
// never held in memory as JSON.
func writeDoc(w io.Writer, head any, t *tree.Tree) error {
	b, err := json.MarshalIndent(head, "", "  ")
	if err != nil {
		return err
	}
	// b ends with `"entries": null` and the closing brace: reopen it.
	b, ok := bytes.CutSuffix(b, []byte("null\n}"))
	if !ok {
		return fmt.Errorf("manifest: %T does not end with its entries", head)
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	bw.Write(b)
	// Every entry is encoded after ",\n", the first one written after
	// "[\n" instead, which out swaps in: the encoding runs on every core,
	// and which entry comes first is only known in order.
	first := true
	par.Encode(len(t.Entries), encodeBatch, runtime.GOMAXPROCS(0), func(b []byte, k int) []byte {
		e := t.Entries[k]
		if e.Top() == tree.OlimageDir {
			return b // the manifest does not list itself
		}
		b = append(b, ",\n"+entryPrefix...)
		return appendEntry(b, e)
	}, func(b []byte) {
		if len(b) == 0 {
			return
		}
		if first {
			bw.WriteString("[\n")
			b, first = b[2:], false
		}
		bw.Write(b)
	})
	if first {
		bw.WriteString("[]\n}\n")
	} else {
		bw.WriteString("\n  ]\n}\n")
	}
	return bw.Flush()
}
