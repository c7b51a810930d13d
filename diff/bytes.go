package diff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/internetarchive/olimage/internal/par"

	"github.com/internetarchive/olimage/tree"
)

// compareBytes compares the content of the files at the same path in a and
// b that have the same size and no digest on either side (two images read
// without hashing), byte by byte on every core, and returns whether each
// pair is equal, keyed by a's entry. That is exact, and cheaper than
// hashing both sides: it stops at the first difference and never hashes.
// Only pairs whose path keep accepts are read: the others are not reported.
func compareBytes(ctx context.Context, a, b *tree.Tree, keep func(string) bool) (map[*tree.Entry]bool, error) {
	type pair struct{ a, b *tree.Entry }
	var pairs []pair
	i, j := 0, 0
	for i < len(a.Entries) && j < len(b.Entries) {
		ea, eb := a.Entries[i], b.Entries[j]
		switch c := tree.ComparePaths(ea, eb); {
		case c < 0:
			i++
			continue
		case c > 0:
			j++
			continue
		}
		i++
		j++
		if ea.Type == tree.File && eb.Type == tree.File && ea.Size == eb.Size &&
			ea.Digest.IsZero() && eb.Digest.IsZero() && ea.Content != nil && eb.Content != nil && keep(ea.Path()) {
			pairs = append(pairs, pair{ea, eb})
		}
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	equal := make([]bool, len(pairs))
	errs := make([]error, len(pairs))
	// Twice as many workers as cores: each waits for reads part of the time.
	workers := 2 * runtime.GOMAXPROCS(0)
	bufs := make([][2][]byte, workers)
	par.Each(len(pairs), workers, func() bool { return ctx.Err() != nil }, func(w, k int) {
		if bufs[w][0] == nil {
			bufs[w] = [2][]byte{make([]byte, 256<<10), make([]byte, 256<<10)}
		}
		equal[k], errs[k] = sameBytes(ctx, pairs[k].a, pairs[k].b, bufs[w][0], bufs[w][1])
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	same := make(map[*tree.Entry]bool, len(pairs))
	for k, p := range pairs {
		same[p.a] = equal[k]
	}
	return same, nil
}

// sameBytes reports whether a's and b's contents, of equal size, are equal.
func sameBytes(ctx context.Context, a, b *tree.Entry, ba, bb []byte) (bool, error) {
	ra, err := a.Content.Open()
	if err != nil {
		return false, fmt.Errorf("%s: %w", a.Path(), err)
	}
	defer ra.Close()
	rb, err := b.Content.Open()
	if err != nil {
		return false, fmt.Errorf("%s: %w", b.Path(), err)
	}
	defer rb.Close()
	for left := a.Size; left > 0; {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		k := int(min(left, int64(len(ba))))
		if _, err := io.ReadFull(ra, ba[:k]); err != nil {
			return false, fmt.Errorf("%s: %w", a.Path(), err)
		}
		if _, err := io.ReadFull(rb, bb[:k]); err != nil {
			return false, fmt.Errorf("%s: %w", b.Path(), err)
		}
		if !bytes.Equal(ba[:k], bb[:k]) {
			return false, nil
		}
		left -= int64(k)
	}
	return true, nil
}
