package tree

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestDigest(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	text := hex.EncodeToString(sum[:])
	d, err := ParseDigest(text)
	if err != nil || d != sum || d.String() != text || string(d.AppendHex([]byte("sha256 "))) != "sha256 "+text {
		t.Errorf("ParseDigest(%q) = %s, %v; want it back", text, d, err)
	}
	if d, err := ParseDigest(""); err != nil || !d.IsZero() || d.String() != "" || len(d.AppendHex(nil)) != 0 {
		t.Errorf(`ParseDigest("") = %x, %v; want the zero Digest, written as ""`, d, err)
	}
	for _, bad := range []string{
		text[:62],               // short
		text + "00",             // long
		strings.ToUpper(text),   // would not be written back the same
		"g" + text[1:],          // not hex
		strings.Repeat("0", 64), // the zero Digest, which means none
		" " + text[1:],          // space
		text[:63] + "\x00",      // NUL
		strings.Repeat("é", 32), // 64 bytes, not hex
	} {
		if d, err := ParseDigest(bad); err == nil {
			t.Errorf("ParseDigest(%q) = %s, want an error", bad, d)
		}
	}
}

// Whatever ParseDigest accepts, String writes back as it was.
func FuzzParseDigest(f *testing.F) {
	sum := sha256.Sum256(nil)
	f.Add(hex.EncodeToString(sum[:]))
	f.Add("")
	f.Add(strings.Repeat("0", 64))
	f.Add(strings.Repeat("A", 64))
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err == nil && d.String() != s {
			t.Errorf("ParseDigest(%q) = %s, which writes back differently", s, d)
		}
	})
}
