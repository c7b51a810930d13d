package tree

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// Quote returns a path, link target or name as it is when it prints as
// one unambiguous piece of a line, and Go-quoted otherwise: when it holds
// a newline or another control character, anything else unprintable
// (bidirectional overrides, line separators), or invalid UTF-8, or starts
// with a double quote and could pass for a quoted name. Every line of
// text output that shows a name goes through it, so a name in an image or
// a source cannot forge lines of a plan, a listing, a diff or a report.
func Quote(s string) string {
	if s != "" && s[0] == '"' {
		return strconv.Quote(s)
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
		i += n
	}
	return s
}
