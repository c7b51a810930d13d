package verify_test

import (
	"context"
	"crypto/ed25519"
	"os"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/internetarchive/olimage/builder"
	"github.com/internetarchive/olimage/internal/testimage"
	"github.com/internetarchive/olimage/sshsig"
	"github.com/internetarchive/olimage/verify"
)

func signer(t *testing.T, seed byte) ssh.Signer {
	t.Helper()
	key := ed25519.NewKeyFromSeed(append(make([]byte, ed25519.SeedSize-1), seed))
	s, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// An image checked against its signed sidecar: clean as built; a byte
// changed in its data fails the dm-verity and sha256 checks; a signature
// by another key, or none, stops the check before the sidecar is trusted.
func TestAgainst(t *testing.T) {
	res := testimage.Build(t, testimage.Fleet(t, files), builder.Options{SHA256: true, Verity: true})
	ci, other := signer(t, 1), signer(t, 2)
	side, err := os.ReadFile(res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := sshsig.Sign(ci, verify.Namespace, side)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(res.Manifest+verify.SignatureSuffix, sig, 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, tr verify.Trust) (string, bool) {
		t.Helper()
		fs, stopped, err := verify.Against(context.Background(), res.Image, tr)
		if err != nil {
			t.Fatal(err)
		}
		return findings(&verify.Report{Findings: fs}), stopped
	}

	if got, stopped := check(t, verify.Trust{Sidecar: res.Manifest, Key: ci.PublicKey(), ExpectRootHash: res.Verity.RootHash}); got != "" || stopped {
		t.Fatalf("a fresh image: stopped %v, findings:\n%s", stopped, got)
	}
	if got, stopped := check(t, verify.Trust{Sidecar: res.Manifest, Key: other.PublicKey()}); !stopped || !strings.Contains(got, verify.SignatureSuffix) {
		t.Errorf("signed by another key: stopped %v, findings:\n%s", stopped, got)
	}
	if got, stopped := check(t, verify.Trust{Sidecar: res.Manifest, Key: ci.PublicKey(), Signature: res.Manifest + ".none"}); !stopped || !strings.Contains(got, "cannot read the signature") {
		t.Errorf("no signature: stopped %v, findings:\n%s", stopped, got)
	}
	if got, _ := check(t, verify.Trust{Sidecar: res.Manifest, ExpectRootHash: strings.Repeat("0", 64)}); !strings.Contains(got, "expected "+strings.Repeat("0", 64)) {
		t.Errorf("another root hash expected: findings:\n%s", got)
	}

	off, _ := contentAt(t, res.Image, "opt/app/data.txt")
	writeAt(t, res.Image, off, []byte("DATA"))
	got, stopped := check(t, verify.Trust{Sidecar: res.Manifest, Key: ci.PublicKey()})
	if stopped || !strings.Contains(got, "dm-verity: ") || !strings.Contains(got, "sha256: sha256 of the image is") {
		t.Errorf("a changed byte: stopped %v, findings:\n%s", stopped, got)
	}
}
