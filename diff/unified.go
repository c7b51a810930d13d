package diff

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

func sha256Reader(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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
	la, lb := lines(a), lines(b)
	ops, ok := myers(la, lb)
	if !ok {
		_, err := fmt.Fprintf(w, "--- %s\n+++ %s\n(more than %d lines differ; no line diff)\n", nameA, nameB, maxEdits)
		return err
	}
	if len(ops) == 0 {
		return nil
	}
	fmt.Fprintf(w, "--- %s\n+++ %s\n", nameA, nameB)
	const ctx = 3
	// Group edits into hunks separated by more than 2*ctx equal lines.
	type edit struct {
		kind byte // ' ', '-', '+'
		text string
		ai   int // line index in a (for ' ' and '-')
		bi   int // line index in b (for ' ' and '+')
	}
	var script []edit
	ai, bi := 0, 0
	for _, op := range ops {
		for ai < op.a && bi < op.b {
			script = append(script, edit{' ', la[ai], ai, bi})
			ai++
			bi++
		}
		if op.del {
			script = append(script, edit{'-', la[ai], ai, bi})
			ai++
		} else {
			script = append(script, edit{'+', lb[bi], ai, bi})
			bi++
		}
	}
	for ai < len(la) {
		script = append(script, edit{' ', la[ai], ai, bi})
		ai++
		bi++
	}
	for i := 0; i < len(script); {
		if script[i].kind == ' ' {
			i++
			continue
		}
		start := max(0, i-ctx)
		end := i
		for end < len(script) {
			if script[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(script) && script[run].kind == ' ' {
				run++
			}
			if run-end > 2*ctx || run == len(script) {
				end = min(end+ctx, len(script))
				break
			}
			end = run
		}
		var na, nb int
		for _, e := range script[start:end] {
			if e.kind != '+' {
				na++
			}
			if e.kind != '-' {
				nb++
			}
		}
		fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(script[start].ai, na), hunkRange(script[start].bi, nb))
		for _, e := range script[start:end] {
			text := e.text
			nl := strings.HasSuffix(text, "\n")
			fmt.Fprintf(w, "%c%s", e.kind, text)
			if !nl {
				fmt.Fprint(w, "\n\\ No newline at end of file\n")
			}
		}
		i = end
	}
	return nil
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprint(start + 1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func lines(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i+1]))
		b = b[i+1:]
	}
	return out
}

type op struct {
	del  bool // delete a[a], else insert b[b]
	a, b int  // position in a and b where the edit applies
}

// maxEdits bounds the edit distance myers searches; beyond it a diff is
// not readable anyway, and the trace would grow with its square.
const maxEdits = 4000

// myers returns the shortest edit script from a to b (Myers 1986), as
// deletions and insertions in order, or false when more than maxEdits
// lines differ.
func myers(a, b []string) ([]op, bool) {
	n, m := len(a), len(b)
	maxD := n + m
	off := maxD + 1
	v := make([]int, 2*maxD+3)
	var trace [][]int // trace[d][k+d]: furthest x on diagonal k before step d
	for d := 0; d <= maxD; d++ {
		if d > maxEdits {
			return nil, false
		}
		snap := make([]int, 2*d+1)
		for k := -d; k <= d; k++ {
			snap[k+d] = v[off+k]
		}
		trace = append(trace, snap)
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || k != d && v[off+k-1] < v[off+k+1] {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x++
				y++
			}
			v[off+k] = x
			if x >= n && y >= m {
				return backtrack(trace, n, m, d), true
			}
		}
	}
	return nil, true
}

func backtrack(trace [][]int, x, y, d int) []op {
	var ops []op
	for ; d > 0; d-- {
		v := trace[d]
		at := func(k int) int { return v[k+d] }
		k := x - y
		var prevK int
		if k == -d || k != d && at(k-1) < at(k+1) {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevX := at(prevK)
		prevY := prevX - prevK
		for x > prevX && y > prevY {
			x--
			y--
		}
		if x == prevX {
			ops = append(ops, op{del: false, a: x, b: prevY})
		} else {
			ops = append(ops, op{del: true, a: prevX, b: y})
		}
		x, y = prevX, prevY
	}
	for i, j := 0, len(ops)-1; i < j; i, j = i+1, j-1 {
		ops[i], ops[j] = ops[j], ops[i]
	}
	return ops
}
