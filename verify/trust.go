package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/ssh"

	"github.com/internetarchive/olimage/ext4/format"
	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/internal/trace"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/sshsig"
	"github.com/internetarchive/olimage/verity"
)

// Namespace is the SSH signature namespace of olimage's sidecar
// signatures (ssh-keygen -Y verify -n olimage).
const Namespace = "olimage"

// SignatureSuffix is what a sidecar's signature file adds to its name,
// as ssh-keygen -Y sign names it.
const SignatureSuffix = ".sig"

// Trust is what an image must match beyond the manifest it carries: a
// sidecar (from CI), its signature, a root hash.
type Trust struct {
	// Sidecar is the sidecar's path; "" when there is none to check.
	Sidecar string
	// Key, when set, must have signed the sidecar; Signature is the
	// signature's path (default Sidecar + SignatureSuffix).
	Key       ssh.PublicKey
	Signature string
	// ExpectRootHash is the dm-verity root hash the image must have.
	ExpectRootHash string
}

// Against checks the image at path against t, in this order: the
// sidecar's signature, then the image's bytes against the digests the
// sidecar records (dm-verity root hash and tree, raw sha256 if
// recorded), then ExpectRootHash. A sidecar or signature that cannot be
// read or does not verify stops the check (stopped is true): nothing the
// sidecar says is trusted then. Each failure is a finding naming what
// failed; the error is for what could not be read of the image.
func Against(ctx context.Context, path string, t Trust) (findings []Finding, stopped bool, err error) {
	f, err := against(ctx, path, t, &stopped)
	return f, stopped, err
}

func against(ctx context.Context, path string, t Trust, stopped *bool) ([]Finding, error) {
	var findings []Finding
	add := func(where, format string, args ...any) {
		findings = append(findings, Finding{Where: where, Msg: fmt.Sprintf(format, args...)})
	}
	var head *manifest.SidecarHead
	if t.Sidecar != "" {
		*stopped = true // until the sidecar is read and its signature verified
		data, err := os.ReadFile(t.Sidecar)
		if err != nil {
			add(t.Sidecar, "cannot read the sidecar: %v", unwrapPath(err))
			return findings, nil
		}
		if t.Key != nil {
			sigPath := t.Signature
			if sigPath == "" {
				sigPath = t.Sidecar + SignatureSuffix
			}
			sig, err := os.ReadFile(sigPath)
			if err != nil {
				add(sigPath, "cannot read the signature: %v", unwrapPath(err))
				return findings, nil
			}
			if err := sshsig.Verify(t.Key, Namespace, data, sig); err != nil {
				add(sigPath, "%v", err)
				return findings, nil
			}
		}
		if head, err = manifest.ReadSidecarHead(data); err != nil {
			add(t.Sidecar, "%v", err)
			return findings, nil
		}
		*stopped = false
	}

	r, size, closeImage, err := openData(path)
	if err != nil {
		return nil, err
	}
	defer closeImage()
	if reads := trace.ReadsOf(ctx); reads != nil {
		// Digests of the whole image read every byte of it.
		if fn := reads(path, size); fn != nil {
			r.ReaderAt = &watched{r: r.ReaderAt, fn: fn}
		}
	}

	var want *verity.Params
	switch {
	case head != nil && head.Image.Verity != nil:
		p := *head.Image.Verity
		switch {
		case !r.raw:
			p.HashOffset = 0 // the tree is not inside a compressed or partitioned file's file system
		case r.device && size == p.DataBlocks*verity.BlockSize:
			// A device of the data alone: the volume opened through
			// dm-verity (/dev/mapper/olimage-ROLE), whose tree the
			// kernel reads from the disk underneath.
			p.HashOffset = 0
		}
		want = &p
	case t.ExpectRootHash != "":
		p, err := superblockParams(r, size)
		if err != nil {
			add("dm-verity", "no salt to compute the root hash with: no sidecar names it and %v (give --sidecar, or build with --verity)", err)
			return findings, nil
		}
		want = p
	}
	if want != nil {
		if t.ExpectRootHash != "" && head == nil {
			want.RootHash = t.ExpectRootHash
		}
		got, err := verity.Check(ctx, r, size, *want)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			// The finding's place says dm-verity already.
			msg := strings.TrimSuffix(err.Error(), ": "+verity.ErrMismatch.Error())
			add("dm-verity", "%s", strings.TrimPrefix(msg, "dm-verity "))
		}
		if t.ExpectRootHash != "" && head != nil && got.RootHash != "" && got.RootHash != t.ExpectRootHash {
			add("dm-verity", "root hash of the data is %s, expected %s", got.RootHash, t.ExpectRootHash)
		}
	}
	if head != nil && head.Image.SHA256 != "" {
		sum, err := rawSHA256(ctx, r, head.Image.Size)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		switch {
		case err != nil:
			add("sha256", "cannot hash %d bytes of the image: %v", head.Image.Size, err)
		case sum != head.Image.SHA256:
			add("sha256", "sha256 of the image is %s, the sidecar says %s", sum, head.Image.SHA256)
		}
	}
	return findings, nil
}

// data is the image's bytes as CI hashed them: the raw file itself, or
// the decompressed file system (or partition) of another format.
type data struct {
	io.ReaderAt
	raw    bool
	device bool // a block device, not a file
}

func openData(path string) (data, int64, func(), error) {
	img, err := image.Open(path)
	if err != nil {
		return data{}, 0, nil, err
	}
	if img.Format != image.Raw || img.Partition != 0 {
		return data{ReaderAt: img}, img.Size, func() { img.Close() }, nil
	}
	img.Close()
	f, err := os.Open(path)
	if err != nil {
		return data{}, 0, nil, err
	}
	size, err := f.Seek(0, io.SeekEnd) // a device's size too
	if err != nil {
		f.Close()
		return data{}, 0, nil, fmt.Errorf("%s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return data{}, 0, nil, err
	}
	return data{ReaderAt: f, raw: true, device: fi.Mode()&os.ModeDevice != 0}, size, func() { f.Close() }, nil
}

// watched calls fn with the bytes read so far after each read of r.
type watched struct {
	r    io.ReaderAt
	fn   func(read int64)
	read atomic.Int64
}

func (w *watched) ReadAt(p []byte, off int64) (int, error) {
	n, err := w.r.ReadAt(p, off)
	w.fn(w.read.Add(int64(n)))
	return n, err
}

// superblockParams reads the dm-verity superblock after the file system
// of a raw image, for the salt and data blocks.
func superblockParams(r data, size int64) (*verity.Params, error) {
	if !r.raw {
		return nil, errors.New("the image is not a raw file that could carry a tree")
	}
	var b [format.SuperblockSize]byte
	if _, err := r.ReadAt(b[:], format.SuperblockOffset); err != nil {
		return nil, fmt.Errorf("no ext4 superblock: %v", err)
	}
	sb, err := format.ParseSuperblock(b[:])
	if err != nil {
		return nil, err
	}
	end := sb.Bytes()
	if end <= 0 || end >= size {
		return nil, errors.New("no dm-verity tree after the file system")
	}
	p, err := verity.ReadParams(r, end)
	if err != nil {
		return nil, fmt.Errorf("no dm-verity tree after the file system (%v)", err)
	}
	return p, nil
}

func rawSHA256(ctx context.Context, r io.ReaderAt, n int64) (string, error) {
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < n; {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		k := min(int64(len(buf)), n-off)
		got, err := r.ReadAt(buf[:k], off)
		if int64(got) < k {
			if err == nil || err == io.EOF {
				err = fmt.Errorf("the image ends at byte %d", off+int64(got))
			}
			return "", err
		}
		h.Write(buf[:k])
		off += k
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// unwrapPath drops the operation from an *os.PathError: the finding
// already names the file.
func unwrapPath(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return strings.TrimSpace(err.Error())
}
