// Package quote appends Go-quoted strings as strconv.AppendQuote does,
// without its rune-by-rune walk where a string is printable ASCII:
// digests of a tree quote every path, and a million paths quoted with
// strconv took a sixteenth of a validate.
package quote

import "strconv"

// Append appends s quoted, exactly as strconv.AppendQuote(b, s) would.
func Append(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.AppendQuote(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendJoin is Append(b, s+t) without building s+t where both are
// printable ASCII, as the two parts of a tree entry's path most often are.
func AppendJoin(b []byte, s, t string) []byte {
	for _, x := range [2]string{s, t} {
		for i := 0; i < len(x); i++ {
			if c := x[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				return strconv.AppendQuote(b, s+t)
			}
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	b = append(b, t...)
	return append(b, '"')
}
