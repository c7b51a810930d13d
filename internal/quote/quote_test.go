package quote

import (
	"strconv"
	"testing"
)

var seeds = []string{"", "a", "opt/d041/s00641/f583.dat", "a b~", `a"b`, `a\b`, "a\nb", "\x7f", "\x1f", "é", "\xff", "a\tb", "日本", "\u2028"}

// Append is strconv.AppendQuote, appended to what b holds.
func TestAppend(t *testing.T) {
	for _, s := range seeds {
		if got, want := string(Append([]byte("x"), s)), "x"+strconv.Quote(s); got != want {
			t.Errorf("Append(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(Append(nil, s)), strconv.Quote(s); got != want {
			t.Errorf("Append(%q) = %s, want %s", s, got, want)
		}
	})
}
