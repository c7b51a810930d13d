// Package artifact publishes images to an OCI registry and fetches them
// back: an image is an OCI artifact of olimage's own type whose config is
// the sidecar manifest and whose layers are the raw image cut into chunks,
// each compressed with zstd. It speaks the registry protocol through
// oras-go; it does not build or read ext4 (packages builder and source).
package artifact

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/internetarchive/olimage/manifest"
)

// Media types of an olimage artifact, documented in docs/registry.md.
const (
	// ArtifactType is the manifest's artifactType.
	ArtifactType = "application/vnd.internetarchive.olimage.image.v1"
	// SidecarType is the config blob: the sidecar manifest, verbatim.
	SidecarType = "application/vnd.internetarchive.olimage.sidecar.v1+json"
	// ChunkType is a layer: one chunk of the raw image, compressed with
	// zstd as one frame.
	ChunkType = "application/vnd.internetarchive.olimage.chunk.v1+zstd"
	// SignatureType is the artifactType of a signature referrer, and the
	// media type of its one layer: the SSH signature of the sidecar that
	// 'olimage sign' writes (SIDECAR.sig; ssh-keygen -Y verify checks it).
	SignatureType = "application/vnd.internetarchive.olimage.signature.v1+sshsig"
	// SBOMType is the artifactType of an SBOM referrer and the media type
	// of its one layer: CycloneDX JSON, as 'olimage sbom IMAGE' writes it.
	SBOMType = "application/vnd.cyclonedx+json"
)

// Annotations olimage sets.
const (
	AnnotationRole         = "org.internetarchive.olimage.role"
	AnnotationFleet        = "org.internetarchive.olimage.fleet"
	AnnotationFleetVersion = "org.internetarchive.olimage.fleet-version"
	AnnotationTree         = "org.internetarchive.olimage.tree"
	// AnnotationImageDigest is the image's identity (Sidecar.Identity):
	// verity:ROOTHASH, or sha256:HEX for a sidecar of version 1.
	AnnotationImageDigest = "org.internetarchive.olimage.image.digest"
	// AnnotationImageSHA256 is the raw image's sha256, when the sidecar
	// has it.
	AnnotationImageSHA256 = "org.internetarchive.olimage.image.sha256"
	AnnotationImageSize   = "org.internetarchive.olimage.image.size"
	// AnnotationOffset, on a layer, is where its chunk starts in the raw
	// image, in bytes.
	AnnotationOffset = "org.internetarchive.olimage.chunk.offset"
	// AnnotationRawSize, on a layer, is its chunk's size uncompressed.
	AnnotationRawSize = "org.internetarchive.olimage.chunk.size"
)

// DefaultChunk is how much raw image goes into one layer: large enough
// that per-request overhead is small, small enough that an interrupted
// pull loses little and several layers download at once.
const DefaultChunk = 16 << 20

// Errors callers branch on.
var (
	// ErrNotImage: the reference names something that is not an olimage
	// image artifact.
	ErrNotImage = errors.New("not an olimage image")
	// ErrDigest: content does not match the digest it was published with.
	ErrDigest = errors.New("digest mismatch")
	// ErrInsecure: --insecure was asked for a registry that is not local.
	ErrInsecure = errors.New("plain HTTP is only allowed to localhost")
)

// Sidecar is what push and pull need from a sidecar manifest: the image
// file's description and the head of the manifest it carries.
type Sidecar struct {
	Image    manifest.ImageFile
	Manifest *manifest.Manifest
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ParseSidecar reads the head of a sidecar document, version 1 (identified
// by the raw image's sha256) or 2 (by its dm-verity root hash).
func ParseSidecar(data []byte) (*Sidecar, error) {
	h, err := manifest.ReadSidecarHead(data)
	if err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	img := h.Image
	if img.Size <= 0 || (img.SHA256 != "" && !hex64.MatchString(img.SHA256)) || (img.Verity != nil && !hex64.MatchString(img.Verity.RootHash)) {
		return nil, fmt.Errorf("sidecar: image size %d, sha256 %q or verity root hash is not valid", img.Size, img.SHA256)
	}
	_, head, _, err := manifest.Head(data)
	if err != nil {
		return nil, fmt.Errorf("sidecar: embedded manifest: %w", err)
	}
	return &Sidecar{Image: img, Manifest: head}, nil
}

// Identity is the digest that identifies the image: its dm-verity root
// hash when the sidecar has one, else its sha256, as "sha256:HEX" or
// "verity:HEX".
func (s *Sidecar) Identity() string {
	if s.Image.Verity != nil {
		return "verity:" + s.Image.Verity.RootHash
	}
	return "sha256:" + s.Image.SHA256
}
