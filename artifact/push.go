package artifact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/internal/par"
)

// PushOptions tune Push.
type PushOptions struct {
	// Tags are tagged besides the reference's own tag.
	Tags []string
	// Chunk is the raw bytes per layer; DefaultChunk if 0.
	Chunk int64
	// Jobs is how many chunks are compressed and uploaded at once.
	Jobs int
	// Progress, if set, is called with raw bytes done and the total.
	Progress func(done, total int64)
}

// PushResult describes a pushed image.
type PushResult struct {
	Ref       string   `json:"ref"`
	Digest    string   `json:"digest"` // of the OCI manifest
	Tags      []string `json:"tags"`
	Layers    int      `json:"layers"`
	Size      int64    `json:"size"`      // raw image bytes
	Pushed    int64    `json:"pushed"`    // compressed bytes of all layers
	Signature string   `json:"signature"` // digest of the signature referrer, if one was pushed
	SBOM      string   `json:"sbom"`      // digest of the SBOM referrer, if one was pushed
	Image     string   `json:"image"`     // the image's identity, Sidecar.Identity
}

// Push publishes the image file at path (raw or .zst) with its sidecar
// path.manifest.json, and as referrers where they exist the sidecar's
// signature path.manifest.json.sig ('olimage sign') and an SBOM
// path.sbom.json ('olimage sbom').
func (c *Client) Push(ctx context.Context, path, ref string, opts PushOptions) (*PushResult, error) {
	sideData, err := os.ReadFile(path + image.SidecarSuffix)
	if err != nil {
		return nil, fmt.Errorf("%s: the image's sidecar: %w", path, err)
	}
	side, err := ParseSidecar(sideData)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", path, image.SidecarSuffix, err)
	}
	repo, r, err := c.repository(ref)
	if err != nil {
		return nil, err
	}
	tags := opts.Tags
	if r.Reference != "" {
		if _, err := r.Digest(); err == nil {
			return nil, fmt.Errorf("%s: push needs a tag, not a digest", ref)
		}
		tags = append([]string{r.Reference}, tags...)
	}
	if len(tags) == 0 {
		return nil, fmt.Errorf("%s: no tag: name one in the reference (REPO:TAG) or with --tag", ref)
	}
	if opts.Chunk <= 0 {
		opts.Chunk = DefaultChunk
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 2
	}
	var raw io.Reader
	if image.Format(side.Image.Compressed) == image.Zstd {
		// Decompressed as it is read, rather than first to a temporary
		// file as image.Open would.
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		zr, err := zstd.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		raw = zr
	} else {
		// The volume: the file itself, a GPT disk's partition or a qcow2
		// image's virtual disk. The registry carries the volume; the disk
		// format is the builder's container for it.
		vol, err := image.Open(path)
		if err != nil {
			return nil, err
		}
		defer vol.Close()
		raw = io.NewSectionReader(vol, 0, side.Image.Size)
	}
	res := &PushResult{Ref: ref, Tags: tags, Size: side.Image.Size, Image: side.Identity()}
	layers, err := pushChunks(ctx, repo, raw, side.Image.Size, opts, res)
	if err != nil {
		return nil, fmt.Errorf("%s: pushing %s: %w", ref, path, err)
	}
	cfg := content.NewDescriptorFromBytes(SidecarType, sideData)
	if err := pushBlob(ctx, repo, cfg, sideData); err != nil {
		return nil, fmt.Errorf("%s: pushing the sidecar: %w", ref, err)
	}
	m := side.Manifest
	ann := map[string]string{
		AnnotationRole:        m.Role,
		AnnotationFleet:       m.Fleet,
		AnnotationTree:        m.TreeDigest,
		AnnotationImageDigest: side.Identity(),
		AnnotationImageSize:   strconv.FormatInt(side.Image.Size, 10),
		// The fleet epoch, not the time of the push: pushing the same
		// image twice gives the same manifest digest.
		ocispec.AnnotationCreated: time.Unix(m.Epoch, 0).UTC().Format(time.RFC3339),
		ocispec.AnnotationTitle:   m.Role,
	}
	if side.Image.SHA256 != "" {
		ann[AnnotationImageSHA256] = side.Image.SHA256
	}
	if m.FleetVersion != "" {
		ann[AnnotationFleetVersion] = m.FleetVersion
		ann[ocispec.AnnotationVersion] = m.FleetVersion
	}
	desc, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, ArtifactType, oras.PackManifestOptions{
		Layers: layers, ConfigDescriptor: &cfg, ManifestAnnotations: ann,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: pushing the manifest: %w", ref, err)
	}
	for _, tag := range tags {
		if err := repo.Tag(ctx, desc, tag); err != nil {
			return nil, fmt.Errorf("%s: tagging %s: %w", ref, tag, err)
		}
	}
	res.Digest = desc.Digest.String()
	res.Layers = len(layers)
	for _, r := range []struct {
		suffix, artifactType string
		digest               *string
	}{
		{image.SidecarSuffix + ".sig", SignatureType, &res.Signature},
		{".sbom.json", SBOMType, &res.SBOM},
	} {
		data, err := os.ReadFile(path + r.suffix)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		d, err := pushReferrer(ctx, repo, desc, r.artifactType, data, m.Epoch)
		if err != nil {
			return nil, fmt.Errorf("%s: pushing %s%s: %w", ref, path, r.suffix, err)
		}
		*r.digest = d.Digest.String()
	}
	return res, nil
}

// pushChunks cuts raw into chunks, compresses and uploads them, Jobs at a
// time, and returns their descriptors in order.
func pushChunks(ctx context.Context, repo *remote.Repository, raw io.Reader, size int64, opts PushOptions, res *PushResult) ([]ocispec.Descriptor, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	n := int((size + opts.Chunk - 1) / opts.Chunk)
	layers := make([]ocispec.Descriptor, n)
	type job struct {
		i   int
		buf []byte
	}
	bufs := make(chan []byte, opts.Jobs+1) // free chunk buffers
	for range opts.Jobs + 1 {
		bufs <- make([]byte, opts.Chunk)
	}
	var (
		mu      sync.Mutex
		done    int64
		started = map[digest.Digest]chan struct{}{} // one upload per distinct chunk
	)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	outs := make([][]byte, opts.Jobs)
	q := par.NewQueue(opts.Jobs, 0, nil, func(w int, j job) {
		out := enc.EncodeAll(j.buf, outs[w][:0])
		outs[w] = out
		rawLen := len(j.buf)
		bufs <- j.buf[:cap(j.buf)]
		d := content.NewDescriptorFromBytes(ChunkType, out)
		d.Annotations = map[string]string{
			AnnotationOffset:  strconv.FormatInt(int64(j.i)*opts.Chunk, 10),
			AnnotationRawSize: strconv.Itoa(rawLen),
		}
		mu.Lock()
		wait, dup := started[d.Digest]
		if !dup {
			wait = make(chan struct{})
			started[d.Digest] = wait
			res.Pushed += d.Size
		}
		mu.Unlock()
		if dup {
			<-wait
		} else {
			err := pushBlob(ctx, repo, d, out)
			close(wait)
			if err != nil {
				cancel(fmt.Errorf("chunk %d: %w", j.i, err))
				return
			}
		}
		layers[j.i] = d
		mu.Lock()
		done += int64(rawLen)
		if opts.Progress != nil {
			opts.Progress(done, size)
		}
		mu.Unlock()
	})
	// Chunks are read in order here, and compressed and uploaded on the
	// queue's goroutines.
	var rerr error
	for i := 0; i < n && ctx.Err() == nil; i++ {
		want := min(opts.Chunk, size-int64(i)*opts.Chunk)
		var buf []byte
		select {
		case buf = <-bufs:
		case <-ctx.Done():
		}
		if buf == nil {
			break
		}
		buf = buf[:want]
		if _, err := io.ReadFull(raw, buf); err != nil {
			rerr = fmt.Errorf("reading the image at %d: %w", int64(i)*opts.Chunk, err)
			break
		}
		q.Add(job{i, buf})
	}
	q.Wait()
	if rerr != nil {
		return nil, rerr
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return layers, nil
}

// pushBlob uploads data unless the registry has it already, which makes
// pushing a new release upload only the chunks that changed.
func pushBlob(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor, data []byte) error {
	if ok, err := repo.Exists(ctx, d); err == nil && ok {
		return nil
	}
	return repo.Push(ctx, d, bytes.NewReader(data))
}

// pushReferrer attaches data, of the given type, to the image manifest
// subject as a referrer: an artifact of that type with data as its layer.
func pushReferrer(ctx context.Context, repo *remote.Repository, subject ocispec.Descriptor, artifactType string, data []byte, epoch int64) (ocispec.Descriptor, error) {
	layer := content.NewDescriptorFromBytes(artifactType, data)
	if err := pushBlob(ctx, repo, layer, data); err != nil {
		return ocispec.Descriptor{}, err
	}
	return oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, artifactType, oras.PackManifestOptions{
		Subject: &subject, Layers: []ocispec.Descriptor{layer},
		ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: time.Unix(epoch, 0).UTC().Format(time.RFC3339)},
	})
}
