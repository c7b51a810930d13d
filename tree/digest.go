package tree

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Digest is the SHA-256 of a file's content, kept as its 32 bytes rather
// than 64 hex digits: a tree of a million files holds a million of them.
// The zero Digest means none is known; no content hashes to it.
type Digest [sha256.Size]byte

// IsZero reports whether d is the zero Digest, which stands for none.
func (d Digest) IsZero() bool { return d == Digest{} }

// String is d in lowercase hex, or "" for the zero Digest.
func (d Digest) String() string {
	if d.IsZero() {
		return ""
	}
	return hex.EncodeToString(d[:])
}

// AppendHex appends what String returns to b.
func (d Digest) AppendHex(b []byte) []byte {
	if d.IsZero() {
		return b
	}
	return hex.AppendEncode(b, d[:])
}

// errDigest is what ParseDigest fails with, under the text it was given.
var errDigest = errors.New("not a sha256 in lowercase hex")

// ParseDigest reads what String writes: "" is the zero Digest, anything
// else 64 lowercase hex digits, so that a digest read and written again
// is the same text.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if s == "" {
		return d, nil
	}
	if len(s) != 2*len(d) {
		return d, fmt.Errorf("sha256 %q: %w", s, errDigest)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return d, fmt.Errorf("sha256 %q: %w", s, errDigest)
		}
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("sha256 %q: %w", s, errDigest)
	}
	if d.IsZero() {
		return d, fmt.Errorf("sha256 %q: all zeros, which no content has", s)
	}
	return d, nil
}
