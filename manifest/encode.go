package manifest

import (
	"encoding/base64"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/internetarchive/olimage/tree"
)

// The indentation of an entry in a manifest's entries array.
const (
	entryPrefix = "    "
	entryIndent = "  "
)

// appendEntry appends e as json.Encoder, with SetIndent(entryPrefix,
// entryIndent), encodes FromEntry(e), less the final newline; the tests
// hold it to exactly those bytes. Encoding a large tree's manifest through
// reflection took longer than planning its image: 1.6 µs an entry here
// against 15 µs through a reused json.Encoder (BenchmarkAppendEntry,
// BenchmarkEntryJSON, means of alternating runs on 2 shared cores).
func appendEntry(b []byte, e *tree.Entry) []byte {
	const field = "\n" + entryPrefix + entryIndent
	b = append(b, '{')
	// The path's two parts escape as the whole would: they meet at a
	// slash, inside no UTF-8 sequence.
	d, n := e.PathParts()
	b = append(b, field+`"path": "`...)
	b = append(appendEscaped(appendEscaped(b, d), n), '"')
	b = appendField(b, field, "type", e.Type.String(), true)
	b = append(b, `,`+field+`"mode": "`...)
	if e.Mode < 0o1000 {
		b = append(b, '0')
	}
	if e.Mode < 0o100 {
		b = append(b, '0')
	}
	if e.Mode < 0o10 {
		b = append(b, '0')
	}
	b = strconv.AppendUint(b, uint64(e.Mode), 8)
	b = append(b, `",`+field+`"uid": `...)
	b = strconv.AppendUint(b, uint64(e.UID), 10)
	b = append(b, `,`+field+`"gid": `...)
	b = strconv.AppendUint(b, uint64(e.GID), 10)
	b = appendField(b, field, "owner", e.Owner(), true)
	b = appendField(b, field, "group", e.Group(), true)
	if e.Size != 0 {
		b = append(b, `,`+field+`"size": `...)
		b = strconv.AppendInt(b, e.Size, 10)
	}
	if !e.Digest.IsZero() {
		// Hex digits need no escaping: straight into b, with no string.
		b = append(b, `,`+field+`"sha256": "`...)
		b = append(e.Digest.AppendHex(b), '"')
	}
	b = appendField(b, field, "target", e.Target, true)
	if len(e.Xattrs()) > 0 {
		// A JSON object's keys in sorted order, as encoding/json writes a
		// map; the last value of a repeated name wins, as in a map.
		xs := slices.Clone(e.Xattrs())
		slices.SortStableFunc(xs, func(a, b tree.Xattr) int {
			switch {
			case a.Name < b.Name:
				return -1
			case a.Name > b.Name:
				return 1
			}
			return 0
		})
		b = append(b, `,`+field+`"xattrs": {`...)
		for i, x := range xs {
			if i+1 < len(xs) && xs[i+1].Name == x.Name {
				continue
			}
			if i > 0 && b[len(b)-1] != '{' {
				b = append(b, ',')
			}
			b = append(b, field+entryIndent...)
			b = appendString(b, x.Name)
			b = append(b, ": "...)
			b = appendString(b, base64.StdEncoding.EncodeToString(x.Value))
		}
		b = append(b, field+"}"...)
	}
	b = append(b, `,`+field+`"mtime": `...)
	b = strconv.AppendInt(b, e.ModTime, 10)
	b = appendField(b, field, "overlay", e.Overlay(), true)
	if len(e.Shadowed()) > 0 {
		b = append(b, `,`+field+`"shadowed": [`...)
		for i, s := range e.Shadowed() {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, field+entryIndent...)
			b = appendString(b, s)
		}
		b = append(b, field+"]"...)
	}
	if e.Implicit {
		b = append(b, `,`+field+`"implicit": true`...)
	}
	b = appendField(b, field, "owner_rule", e.OwnerRule(), true)
	b = appendField(b, field, "mode_rule", e.ModeRule(), true)
	return append(b, "\n"+entryPrefix+"}"...)
}

// appendField appends a string field; omitEmpty leaves out "". Every field
// but the first is preceded by a comma.
func appendField(b []byte, field, key, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return b
	}
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, field...)
	b = append(b, '"')
	b = append(b, key...)
	b = append(b, `": `...)
	return appendString(b, v)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does by
// default: <, > and & escaped for HTML, invalid UTF-8 as U+FFFD, and the
// line and paragraph separators escaped.
func appendString(b []byte, s string) []byte {
	return append(appendEscaped(append(b, '"'), s), '"')
}

// appendEscaped is appendString without the quotes.
func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
