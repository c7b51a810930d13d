package artifact

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/internal/par"
	"github.com/internetarchive/olimage/verity"
)

// PullOptions tune Pull.
type PullOptions struct {
	// Jobs is how many layers download at once.
	Jobs int
	// Progress, if set, is called with raw bytes done and the total.
	Progress func(done, total int64)
	// Retries is how many times a layer is fetched again after a
	// transport error or a digest mismatch; 4 if 0, none if negative.
	Retries int
}

// PullResult describes a pulled image.
type PullResult struct {
	Ref     string `json:"ref"`
	Digest  string `json:"digest"` // of the OCI manifest
	Target  string `json:"target"`
	Device  bool   `json:"device"`
	Size    int64  `json:"size"`
	Image   string `json:"image"`            // the image's identity, checked: Sidecar.Identity
	SHA256  string `json:"sha256,omitempty"` // of the raw image, checked, when the sidecar has it
	Layers  int    `json:"layers"`
	Resumed int    `json:"resumed"` // layers an earlier, interrupted pull had written
	Written int64  `json:"written"` // bytes written: the non-zero blocks
}

// resolved is an olimage artifact whose manifest and sidecar were fetched.
type resolved struct {
	repo     *remote.Repository
	desc     ocispec.Descriptor
	manifest ocispec.Manifest
	sidecar  []byte
	side     *Sidecar
}

// resolve fetches ref's manifest and sidecar and checks they are an
// olimage image's.
func (c *Client) resolve(ctx context.Context, ref string) (*resolved, error) {
	repo, r, err := c.repository(ref)
	if err != nil {
		return nil, err
	}
	if r.Reference == "" {
		return nil, fmt.Errorf("%s: name a tag or a digest (REPO:TAG, REPO@sha256:...)", ref)
	}
	desc, rc, err := repo.FetchReference(ctx, r.Reference)
	if err != nil {
		return nil, fmt.Errorf("%s: fetching the manifest: %w", ref, err)
	}
	data, err := content.ReadAll(rc, desc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: reading the manifest: %w", ref, err)
	}
	img := &resolved{repo: repo, desc: desc}
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		return nil, fmt.Errorf("%s: %w: a %s", ref, ErrNotImage, desc.MediaType)
	}
	if err := json.Unmarshal(data, &img.manifest); err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", ref, err)
	}
	m := img.manifest
	if m.ArtifactType != ArtifactType || m.Config.MediaType != SidecarType {
		t := m.ArtifactType
		if t == "" {
			t = m.Config.MediaType
		}
		return nil, fmt.Errorf("%s: %w: artifact type %q, want %s", ref, ErrNotImage, t, ArtifactType)
	}
	if m.Config.Size > 1<<30 {
		return nil, fmt.Errorf("%s: sidecar of %d bytes is too large", ref, m.Config.Size)
	}
	img.sidecar, err = content.FetchAll(ctx, repo, m.Config)
	if err != nil {
		return nil, fmt.Errorf("%s: fetching the sidecar: %w", ref, err)
	}
	img.side, err = ParseSidecar(img.sidecar)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return img, nil
}

// Sidecar fetches the sidecar manifest of the image ref names, without
// its layers, and the manifest's digest.
func (c *Client) Sidecar(ctx context.Context, ref string) ([]byte, string, error) {
	img, err := c.resolve(ctx, ref)
	if err != nil {
		return nil, "", err
	}
	return img.sidecar, img.desc.Digest.String(), nil
}

// chunk is one layer of an image, checked.
type chunk struct {
	desc   ocispec.Descriptor
	offset int64
	size   int64
}

// chunks checks that the layers are olimage chunks that tile the image.
func (img *resolved) chunks(ref string) ([]chunk, error) {
	var cs []chunk
	var next int64
	maxChunk := int64(256 << 20)
	for i, l := range img.manifest.Layers {
		off, err1 := strconv.ParseInt(l.Annotations[AnnotationOffset], 10, 64)
		size, err2 := strconv.ParseInt(l.Annotations[AnnotationRawSize], 10, 64)
		switch {
		case l.MediaType != ChunkType:
			return nil, fmt.Errorf("%s: layer %d: %w: media type %s, want %s", ref, i, ErrNotImage, l.MediaType, ChunkType)
		case err1 != nil || err2 != nil:
			return nil, fmt.Errorf("%s: layer %d: %w: no valid offset or size annotation", ref, i, ErrNotImage)
		case off != next || size <= 0 || size > maxChunk || l.Size <= 0 || l.Size > 2*maxChunk:
			return nil, fmt.Errorf("%s: layer %d: %w: chunk at %d of %d bytes (%d compressed), want one at %d", ref, i, ErrNotImage, off, size, l.Size, next)
		}
		cs = append(cs, chunk{desc: l, offset: off, size: size})
		next += size
	}
	if next != img.side.Image.Size {
		return nil, fmt.Errorf("%s: %w: layers hold %d bytes, the sidecar says %d", ref, ErrNotImage, next, img.side.Image.Size)
	}
	return cs, nil
}

// Pull fetches the image ref names into target: a file, written beside it
// and renamed into place once its dm-verity root hash and sha256 (those
// of the two the sidecar has) match the sidecar's, with the
// sidecar beside it as target.manifest.json; or a block device, written in
// place and read back to check. Layers download opts.Jobs at a time; a
// file pull that fails on the network keeps what it wrote, and the next
// pull of the same manifest to the same target resumes from it.
func (c *Client) Pull(ctx context.Context, ref, target string, opts PullOptions) (*PullResult, error) {
	img, err := c.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	cs, err := img.chunks(ref)
	if err != nil {
		return nil, err
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 4
	}
	if opts.Retries == 0 {
		opts.Retries = 4
	}
	res := &PullResult{Ref: ref, Digest: img.desc.Digest.String(), Target: target, Size: img.side.Image.Size, Image: img.side.Identity(), SHA256: img.side.Image.SHA256, Layers: len(cs)}
	fi, err := os.Stat(target)
	if err == nil && fi.Mode()&os.ModeDevice != 0 {
		res.Device = true
		return res, c.pullDevice(ctx, img, cs, target, opts, res)
	}
	return res, c.pullFile(ctx, img, cs, target, opts, res)
}

// output is where chunks go.
type output struct {
	f      *os.File
	device bool
	name   string
}

// pullFile pulls into a temporary file beside target.
func (c *Client) pullFile(ctx context.Context, img *resolved, cs []chunk, target string, opts PullOptions, res *PullResult) error {
	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	// The lock builds of the target take too: one writer of the target,
	// and of the partial file, at a time.
	lock, err := image.LockTarget(target)
	if err != nil {
		return fmt.Errorf("%s: %w", res.Ref, err)
	}
	defer lock.Unlock()
	// Named after the manifest, so that only a pull of the same image
	// resumes from it.
	tmp := filepath.Join(dir, "."+base+".pull-"+img.desc.Digest.Encoded()[:16])
	journal := tmp + ".done"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	keep := false
	defer func() {
		f.Close()
		if !keep {
			os.Remove(tmp)
			os.Remove(journal)
		}
	}()
	done := readJournal(journal, len(cs))
	if len(done) == 0 {
		// Start from nothing: a file of holes.
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
	}
	if err := f.Truncate(res.Size); err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	jf, err := os.OpenFile(journal, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	defer jf.Close()
	out := &output{f: f, name: target}
	sum, err := c.fetchChunks(ctx, img, cs, out, done, jf, opts, res)
	if err != nil {
		// What was written stays for the next attempt when the network
		// or an interruption stopped the pull; anything else starts over.
		keep = resumable(ctx, err)
		if keep {
			return fmt.Errorf("%s: %w (run the same pull again to resume)", res.Ref, err)
		}
		return fmt.Errorf("%s: %w", res.Ref, err)
	}
	if res.SHA256 != "" && sum != res.SHA256 {
		return fmt.Errorf("%s: %s: %w: the image's sha256 is %s, the sidecar says %s", res.Ref, target, ErrDigest, sum, res.SHA256)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	if err := checkVerity(ctx, f, img.side); err != nil {
		return fmt.Errorf("%s: %s: %w", res.Ref, target, err)
	}
	// The image and its sidecar replace what was at the target as one
	// pair, as a build's do (image.Lock.Replace).
	imgTmp, err := image.WriteTemp(target, nil)
	if err == nil {
		err = os.Rename(tmp, imgTmp)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", res.Ref, err)
	}
	tmp = imgTmp // removed on failure from here
	sideTmp, err := image.WriteTemp(target+image.SidecarSuffix, img.sidecar)
	if err != nil {
		return fmt.Errorf("%s: %w", res.Ref, err)
	}
	os.Remove(journal)
	keep = true // Replace owns the temporaries
	if err := lock.Replace(target, imgTmp, sideTmp); err != nil {
		return fmt.Errorf("%s: %w", res.Ref, err)
	}
	return nil
}

// pullDevice writes the image onto a block device and reads it back.
func (c *Client) pullDevice(ctx context.Context, img *resolved, cs []chunk, target string, opts PullOptions, res *PullResult) error {
	// O_EXCL on a block device fails if it is mounted or otherwise held.
	f, err := os.OpenFile(target, os.O_RDWR|os.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	if end < res.Size {
		return fmt.Errorf("%s: device of %d bytes is smaller than the image's %d", target, end, res.Size)
	}
	out := &output{f: f, device: true, name: target}
	if _, err := c.fetchChunks(ctx, img, cs, out, nil, nil, opts, res); err != nil {
		return fmt.Errorf("%s: %s: %w (the device holds a partial image)", res.Ref, target, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	// What counts is what the device returns, not what was sent to it:
	// its dm-verity tree, else its sha256, read back.
	if img.side.Image.Verity != nil {
		if err := checkVerity(ctx, f, img.side); err != nil {
			return fmt.Errorf("%s: %s: reading back: %w; do not use it", res.Ref, target, err)
		}
		return nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, res.Size)); err != nil {
		return fmt.Errorf("%s: reading back: %w", target, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != res.SHA256 {
		return fmt.Errorf("%s: %s: %w: the device reads back sha256 %s, the sidecar says %s; do not use it", res.Ref, target, ErrDigest, sum, res.SHA256)
	}
	return nil
}

// checkVerity recomputes the dm-verity root hash of the data written to f
// (and compares the tree stored after it, if any) with the sidecar's.
func checkVerity(ctx context.Context, f *os.File, side *Sidecar) error {
	if side.Image.Verity == nil {
		return nil
	}
	if _, err := verity.Check(ctx, f, side.Image.Size, *side.Image.Verity); err != nil {
		if errors.Is(err, verity.ErrMismatch) {
			return fmt.Errorf("%w: %w", ErrDigest, err)
		}
		return err
	}
	return nil
}

// resumable tells errors of the network or an interruption from the rest.
func resumable(ctx context.Context, err error) bool {
	// Not net.Error: syscall.Errno implements it, and ENOSPC is no
	// reason to keep a partial file.
	var oe *net.OpError
	var ue *url.Error
	return ctx.Err() != nil || errors.As(err, &oe) || errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || serverError(err)
}

// serverError reports a registry's 5xx answer, which retries did not
// outlast.
func serverError(err error) bool {
	var er *errcode.ErrorResponse
	return errors.As(err, &er) && er.StatusCode >= 500
}

// readJournal returns the chunks a journal lists as written.
func readJournal(name string, n int) map[int]bool {
	done := map[int]bool{}
	data, err := os.ReadFile(name)
	if err != nil {
		return done
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if i, err := strconv.Atoi(sc.Text()); err == nil && i >= 0 && i < n {
			done[i] = true
		}
	}
	return done
}

// fetchChunks fetches, checks, decompresses and writes every chunk not in
// done, Jobs at a time, and returns the sha256 of the whole image,
// hashed in order as chunks complete. Chunks in done are read back from
// out for the hash.
func (c *Client) fetchChunks(ctx context.Context, img *resolved, cs []chunk, out *output, done map[int]bool, journal *os.File, opts PullOptions, res *PullResult) (string, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ready := make([]chan []byte, len(cs))
	for i := range ready {
		ready[i] = make(chan []byte, 1)
	}
	var mu sync.Mutex
	var progress int64
	again := len(done) > 0 // a resumed file may hold bytes of the earlier attempt
	decs := make([]*zstd.Decoder, opts.Jobs)
	defer func() {
		for _, d := range decs {
			if d != nil {
				d.Close()
			}
		}
	}()
	stop := func() bool { return ctx.Err() != nil }
	q := par.NewQueue(opts.Jobs, 0, stop, func(w, i int) {
		if decs[w] == nil {
			decs[w], _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(512<<20))
		}
		buf := make([]byte, cs[i].size)
		var err error
		if done[i] {
			_, err = out.f.ReadAt(buf, cs[i].offset)
			if err == nil {
				mu.Lock()
				res.Resumed++
				mu.Unlock()
			}
		} else {
			err = c.fetchChunk(ctx, img.repo, decs[w], cs[i], buf, opts.Retries)
			var n int64
			if err == nil {
				n, err = out.write(buf, cs[i].offset, again)
			}
			if err == nil && journal != nil {
				// The journal names a chunk only once its bytes are
				// on disk.
				if err = out.f.Sync(); err == nil {
					mu.Lock()
					_, err = fmt.Fprintf(journal, "%d\n", i)
					mu.Unlock()
				}
			}
			mu.Lock()
			res.Written += n
			mu.Unlock()
		}
		if err != nil {
			cancel(fmt.Errorf("layer %d (%s): %w", i, cs[i].desc.Digest, err))
			return
		}
		mu.Lock()
		progress += cs[i].size
		if opts.Progress != nil {
			opts.Progress(progress, res.Size)
		}
		mu.Unlock()
		ready[i] <- buf
	})
	// No chunk is queued more than Jobs past the next one to hash, so at
	// most Jobs+1 are in memory: Add waits for a free goroutine, and a
	// fetched chunk waits in ready for its turn to be hashed.
	h := sha256.New()
	var err error
	next := 0
	for i := range cs {
		for ; next < len(cs) && next <= i+opts.Jobs && ctx.Err() == nil; next++ {
			q.Add(next)
		}
		select {
		case buf := <-ready[i]:
			h.Write(buf)
			continue
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
		break
	}
	cancel(nil)
	q.Wait()
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fetchChunk downloads one layer into buf, decompressing as it arrives,
// and checks its digest; it tries again after transport errors and
// mismatches, with backoff.
func (c *Client) fetchChunk(ctx context.Context, repo *remote.Repository, dec *zstd.Decoder, ch chunk, buf []byte, retries int) error {
	var err error
	for attempt := 0; ; attempt++ {
		err = c.fetchOnce(ctx, repo, dec, ch, buf)
		if err == nil || ctx.Err() != nil || attempt >= retries {
			return err
		}
		select {
		case <-time.After(time.Duration(250<<attempt) * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

func (c *Client) fetchOnce(ctx context.Context, repo *remote.Repository, dec *zstd.Decoder, ch chunk, buf []byte) error {
	rc, err := repo.Blobs().Fetch(ctx, ch.desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	body := io.LimitReader(rc, ch.desc.Size)
	err = decode(dec, io.TeeReader(body, h), buf)
	// Every compressed byte is hashed, also after a decoding error: a
	// corrupt layer is reported as one, not as bad zstd.
	if _, cerr := io.Copy(h, body); cerr != nil {
		return cerr
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != ch.desc.Digest.String() {
		return fmt.Errorf("%w: got %s", ErrDigest, got)
	}
	return err
}

// decode decompresses one zstd frame from r, which must fill buf exactly.
func decode(dec *zstd.Decoder, r io.Reader, buf []byte) error {
	if err := dec.Reset(r); err != nil {
		return err
	}
	if _, err := io.ReadFull(dec, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: decompressed to fewer than %d bytes", io.ErrUnexpectedEOF, len(buf))
		}
		return err
	}
	if n, _ := io.Copy(io.Discard, dec); n != 0 {
		return fmt.Errorf("chunk decompresses to more than %d bytes", len(buf))
	}
	return nil
}

// blockSize is the unit of sparseness: zero blocks are not written.
const blockSize = 4096

// write puts buf at off, skipping zero blocks: a file keeps them as
// holes, a device gets them zeroed without sending zeros (BLKZEROOUT).
// again says the range may hold bytes of an earlier attempt.
func (o *output) write(buf []byte, off int64, again bool) (int64, error) {
	var written int64
	for start := 0; start < len(buf); {
		end := start
		zero := isZero(buf[start:min(start+blockSize, len(buf))])
		for end < len(buf) && isZero(buf[end:min(end+blockSize, len(buf))]) == zero {
			end = min(end+blockSize, len(buf))
		}
		if zero {
			if err := o.zero(off+int64(start), int64(end-start), again); err != nil {
				return written, err
			}
		} else {
			if _, err := o.f.WriteAt(buf[start:end], off+int64(start)); err != nil {
				return written, fmt.Errorf("%s: %w", o.name, err)
			}
			written += int64(end - start)
		}
		start = end
	}
	return written, nil
}

func isZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

var zeros = make([]byte, 1<<20)

// zero makes a range read as zeros.
func (o *output) zero(off, n int64, again bool) error {
	if !o.device && !again {
		return nil // a new file's holes read as zeros
	}
	if err := zeroRange(o.f, o.device, off, n); err == nil {
		return nil
	}
	for n > 0 {
		k := min(n, int64(len(zeros)))
		if _, err := o.f.WriteAt(zeros[:k], off); err != nil {
			return fmt.Errorf("%s: %w", o.name, err)
		}
		off, n = off+k, n-k
	}
	return nil
}
