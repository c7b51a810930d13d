package diff

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/aymanbagabas/go-udiff"

	"github.com/internetarchive/olimage/tree"
)

func sha256Reader(r io.Reader) (tree.Digest, error) {
	var d tree.Digest
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return d, err
	}
	h.Sum(d[:0])
	return d, nil
}

// MaxText is the largest file, per side, that gets a line diff.
const MaxText = 4 << 20

// IsText reports whether b looks like text: valid UTF-8 without NUL bytes.
func IsText(b []byte) bool {
	return bytes.IndexByte(b, 0) < 0 && utf8.Valid(b)
}

// Unified writes a unified diff of a and b with three lines of context,
// labelled with the two names. Equal inputs write nothing.
func Unified(w io.Writer, nameA, nameB string, a, b []byte) error {
	if bytes.Equal(a, b) {
		return nil
	}
	sa, sb := string(a), string(b)
	edits := udiff.Lines(sa, sb)
	changed := 0
	for _, e := range edits {
		changed += strings.Count(sa[e.Start:e.End], "\n") + strings.Count(e.New, "\n")
	}
	if changed > maxEdits {
		_, err := fmt.Fprintf(w, "--- %s\n+++ %s\n(more than %d lines differ; no line diff)\n", nameA, nameB, maxEdits)
		return err
	}
	out, err := udiff.ToUnified(nameA, nameB, sa, edits, udiff.DefaultContextLines)
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, out)
	return err
}

// maxEdits bounds the lines deleted and inserted that are shown; beyond
// it a diff is not readable anyway. (A last line without a newline is not
// counted: the bound need not be exact.)
const maxEdits = 4000
