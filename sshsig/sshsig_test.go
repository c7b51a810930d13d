package sshsig

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"golang.org/x/crypto/ssh"
)

// keygen makes a key pair with ssh-keygen and returns the private key's
// path, its signer and public key.
func keygen(t *testing.T, typ string) (string, ssh.Signer) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "id_"+typ)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", typ, "-N", "", "-C", "ci", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return p, s
}

// sshKeygenVerify runs ssh-keygen -Y verify on msg and sig with key as
// the one allowed signer.
func sshKeygenVerify(t *testing.T, key ssh.PublicKey, ns string, msg, sig []byte) error {
	t.Helper()
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed_signers")
	os.WriteFile(allowed, []byte("ci "+string(ssh.MarshalAuthorizedKey(key))), 0o644)
	sigFile := filepath.Join(dir, "msg.sig")
	os.WriteFile(sigFile, sig, 0o644)
	cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowed, "-I", "ci", "-n", ns, "-s", sigFile)
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return errors.New(strings.TrimSpace(string(out)))
	}
	return nil
}

func TestSignVerifiedBySSHKeygen(t *testing.T) {
	testenv.Tool(t, "ssh-keygen")
	msg := []byte(`{"schema": "olimage.sidecar/v2"}` + "\n")
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			_, s := keygen(t, typ)
			sig, err := Sign(s, "olimage", msg)
			if err != nil {
				t.Fatal(err)
			}
			if err := sshKeygenVerify(t, s.PublicKey(), "olimage", msg, sig); err != nil {
				t.Errorf("ssh-keygen -Y verify refused olimage's signature: %v\n%s", err, sig)
			}
			if err := Verify(s.PublicKey(), "olimage", msg, sig); err != nil {
				t.Errorf("Verify: %v", err)
			}
			// ssh-keygen -Y verify must refuse it for other content too, or
			// the check above proves nothing.
			if err := sshKeygenVerify(t, s.PublicKey(), "olimage", append(msg, ' '), sig); err == nil {
				t.Errorf("ssh-keygen -Y verify accepted the signature over other content")
			}
		})
	}
}

func TestVerifiesSSHKeygenSignatures(t *testing.T) {
	testenv.Tool(t, "ssh-keygen")
	path, s := keygen(t, "ed25519")
	msg := []byte("a sidecar\n")
	cmd := exec.Command("ssh-keygen", "-Y", "sign", "-f", path, "-n", "olimage")
	cmd.Stdin = bytes.NewReader(msg)
	sig, err := cmd.Output()
	if err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v", err)
	}
	if err := Verify(s.PublicKey(), "olimage", msg, sig); err != nil {
		t.Errorf("Verify of ssh-keygen's signature: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	testenv.Tool(t, "ssh-keygen")
	_, s := keygen(t, "ed25519")
	_, other := keygen(t, "ed25519")
	msg := []byte("sidecar a\n")
	sig, err := Sign(s, "olimage", msg)
	if err != nil {
		t.Fatal(err)
	}
	otherNS, _ := Sign(s, "file", msg)
	flipped := bytes.Clone(sig)
	flipped[len(beginLine)+40] ^= 1
	cases := []struct {
		name string
		key  ssh.PublicKey
		msg  []byte
		sig  []byte
		want string
	}{
		{"wrong key", other.PublicKey(), msg, sig, "not by the given key"},
		{"other content", s.PublicKey(), []byte("sidecar b\n"), sig, "not over this content"},
		{"other namespace", s.PublicKey(), msg, otherNS, `namespace "file"`},
		{"not armored", s.PublicKey(), msg, []byte("hello"), "not an SSH signature"},
		{"truncated", s.PublicKey(), msg, append(sig[:len(beginLine)+60:len(beginLine)+60], "\n"+endLine+"\n"...), "SSH signature"},
		{"flipped bit", s.PublicKey(), msg, flipped, "signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.key, "olimage", c.msg, c.sig)
			if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want ErrVerify saying %q", err, c.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(beginLine + "\nU1NIU0lHAAAAAQ==\n" + endLine + "\n"))
	f.Add([]byte(beginLine + "\n" + endLine))
	f.Add([]byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAg\n-----END SSH SIGNATURE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err == nil && (s.PublicKey == nil || s.sig == nil) {
			t.Fatal("parsed without a key or signature")
		}
		if err != nil && !errors.Is(err, ErrVerify) {
			t.Fatalf("error %v does not wrap ErrVerify", err)
		}
	})
}
