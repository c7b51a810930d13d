// Package sshsig signs and verifies messages in OpenSSH's signature
// format (PROTOCOL.sshsig), the one `ssh-keygen -Y sign` writes and
// `ssh-keygen -Y verify` checks, so that a signature olimage makes can be
// checked without olimage. It does not manage keys or allowed-signers
// files: callers pass a parsed key.
package sshsig

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

const (
	magic     = "SSHSIG"
	version   = 1
	beginLine = "-----BEGIN SSH SIGNATURE-----"
	endLine   = "-----END SSH SIGNATURE-----"
)

// ErrVerify marks a signature that is malformed, from another key, for
// another namespace, or not over the message.
var ErrVerify = errors.New("signature does not verify")

// signedData is the blob the key signs: the message's hash with the
// namespace, so that a signature made for one purpose is no good for
// another.
func signedData(namespace, hashAlg string, digest []byte) []byte {
	var b bytes.Buffer
	b.WriteString(magic)
	putString(&b, []byte(namespace))
	putString(&b, nil) // reserved
	putString(&b, []byte(hashAlg))
	putString(&b, digest)
	return b.Bytes()
}

func putString(b *bytes.Buffer, s []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	b.Write(n[:])
	b.Write(s)
}

func hashOf(alg string, msg []byte) ([]byte, error) {
	switch alg {
	case "sha512":
		h := sha512.Sum512(msg)
		return h[:], nil
	case "sha256":
		h := sha256.Sum256(msg)
		return h[:], nil
	}
	return nil, fmt.Errorf("hash algorithm %q: want sha512 or sha256", alg)
}

// Sign signs msg for namespace with signer and returns the armored
// signature. RSA keys sign with rsa-sha2-512, as ssh-keygen does.
func Sign(signer ssh.Signer, namespace string, msg []byte) ([]byte, error) {
	if namespace == "" {
		return nil, errors.New("sshsig: empty namespace")
	}
	digest, _ := hashOf("sha512", msg)
	data := signedData(namespace, "sha512", digest)
	var sig *ssh.Signature
	var err error
	if as, ok := signer.(ssh.AlgorithmSigner); ok && signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = signer.Sign(rand.Reader, data)
	}
	if err != nil {
		return nil, fmt.Errorf("sshsig: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(magic)
	binary.Write(&b, binary.BigEndian, uint32(version))
	putString(&b, signer.PublicKey().Marshal())
	putString(&b, []byte(namespace))
	putString(&b, nil)
	putString(&b, []byte("sha512"))
	putString(&b, ssh.Marshal(sig))
	return armor(b.Bytes()), nil
}

func armor(blob []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(blob)
	var b strings.Builder
	b.WriteString(beginLine + "\n")
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n" + endLine + "\n")
	return []byte(b.String())
}

// Signature is a parsed signature.
type Signature struct {
	PublicKey ssh.PublicKey
	Namespace string
	HashAlg   string
	sig       *ssh.Signature
}

// Parse reads an armored signature. It checks the format only, not the
// signature: see Verify.
func Parse(armored []byte) (*Signature, error) {
	s := strings.TrimSpace(string(armored))
	if !strings.HasPrefix(s, beginLine) || !strings.HasSuffix(s, endLine) {
		return nil, fmt.Errorf("not an SSH signature (no %s ... %s armor): %w", beginLine, endLine, ErrVerify)
	}
	body := strings.Join(strings.Fields(s[len(beginLine):len(s)-len(endLine)]), "")
	blob, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("SSH signature: bad base64: %w", ErrVerify)
	}
	r := reader{b: blob}
	if string(r.take(len(magic))) != magic {
		return nil, fmt.Errorf("SSH signature: no %s preamble: %w", magic, ErrVerify)
	}
	if v := r.uint32(); v != version {
		return nil, fmt.Errorf("SSH signature: version %d, want %d: %w", v, version, ErrVerify)
	}
	pub, ns, reserved, alg, sigBlob := r.str(), r.str(), r.str(), r.str(), r.str()
	if r.err || len(r.b) != 0 {
		return nil, fmt.Errorf("SSH signature: truncated or trailing bytes: %w", ErrVerify)
	}
	_ = reserved
	key, err := ssh.ParsePublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("SSH signature: public key: %v: %w", err, ErrVerify)
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(sigBlob, sig); err != nil {
		return nil, fmt.Errorf("SSH signature: signature: %v: %w", err, ErrVerify)
	}
	return &Signature{PublicKey: key, Namespace: string(ns), HashAlg: string(alg), sig: sig}, nil
}

// Verify checks that armored is a signature by key over msg for
// namespace.
func Verify(key ssh.PublicKey, namespace string, msg, armored []byte) error {
	s, err := Parse(armored)
	if err != nil {
		return err
	}
	if !bytes.Equal(s.PublicKey.Marshal(), key.Marshal()) {
		return fmt.Errorf("signed by %s %s, not by the given key %s: %w", s.PublicKey.Type(), ssh.FingerprintSHA256(s.PublicKey), ssh.FingerprintSHA256(key), ErrVerify)
	}
	if s.Namespace != namespace {
		return fmt.Errorf("signature for namespace %q, want %q: %w", s.Namespace, namespace, ErrVerify)
	}
	digest, err := hashOf(s.HashAlg, msg)
	if err != nil {
		return fmt.Errorf("signature: %v: %w", err, ErrVerify)
	}
	if err := key.Verify(signedData(namespace, s.HashAlg, digest), s.sig); err != nil {
		return fmt.Errorf("signature by %s is not over this content: %w", ssh.FingerprintSHA256(key), ErrVerify)
	}
	return nil
}

// reader takes SSH wire-format fields from b, remembering a short read.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) take(n int) []byte {
	if r.err || n < 0 || n > len(r.b) {
		r.err = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) uint32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) str() []byte {
	n := r.uint32()
	if n > uint32(len(r.b)) {
		r.err = true
		return nil
	}
	return r.take(int(n))
}
