package manifest

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/internetarchive/olimage/tree"
	"github.com/internetarchive/olimage/verity"
)

// Path is where an image keeps its manifest, relative to the volume root.
const Path = tree.OlimageDir + "/manifest.json"

// ImageSchema identifies the manifest written into every image.
const ImageSchema = "olimage.manifest/v1"

// SidecarSchema identifies the manifest written beside an image file.
// Version 2 identifies the image by its dm-verity root hash (always
// recorded) and makes the raw image's sha256 optional; version 1, which
// always had the sha256 and no root hash, is still read.
const (
	SidecarSchema   = "olimage.sidecar/v2"
	SidecarSchemaV1 = "olimage.sidecar/v1"
)

// Manifest is the manifest inside an image: what it was built from and every
// entry it holds, except the manifest itself.
type Manifest struct {
	Schema       string        `json:"schema"`
	Olimage      string        `json:"olimage"` // version of the olimage that built it
	Fleet        string        `json:"fleet"`
	FleetVersion string        `json:"fleet_version,omitempty"`
	Role         string        `json:"role"`
	Label        string        `json:"label"`
	UUID         string        `json:"uuid"`
	Epoch        int64         `json:"epoch"`
	TreeDigest   string        `json:"tree"` // TreeDigest of the entries
	Activation   *Activation   `json:"activation"`
	Deploys      []tree.Deploy `json:"deploys,omitempty"`
	Inputs       []tree.Input  `json:"inputs"`
	Entries      []Entry       `json:"entries"`
}

// Activation says how a VM uses the volume once it is mounted: which paths
// of the root file system become symlinks into it.
type Activation struct {
	// Mount is where the volume is mounted on the VM.
	Mount string `json:"mount"`
	// Links are made on the root file system, in this order.
	Links []Link `json:"links"`
	// State are the directories the role's services write to, made on
	// the root disk if missing, in this order.
	State []StatePath `json:"state,omitempty"`
	// Secrets are the files the role's services need that the VM
	// supplies; activation checks them before anything changes.
	Secrets []SecretPath `json:"secrets,omitempty"`
}

// Link is one symlink activation makes.
type Link struct {
	Path   string `json:"path"`   // on the root file system, relative to /: opt/openlibrary
	Target string `json:"target"` // in the volume, relative to its root: opt/openlibrary
}

// ReadHistory reads the manifest of the image whose files fs holds, as an
// earlier release's deploy history needs it: the fleet the image was
// built for, and the deploys it records. It is an overlays.History.
func ReadHistory(fs interface{ ReadFile(string) ([]byte, error) }) (fleet string, deploys []tree.Deploy, err error) {
	data, err := fs.ReadFile(Path)
	if err != nil {
		return "", nil, fmt.Errorf("not an olimage image: %w", err)
	}
	_, head, _, err := Head(data)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", Path, err)
	}
	if head == nil || head.Schema != ImageSchema {
		return "", nil, fmt.Errorf("%s: not an image manifest", Path)
	}
	return head.Fleet, head.Deploys, nil
}

// DefaultMount is where the /1 data volume is mounted.
const DefaultMount = "/1"

// ActivationFor derives the activation plan of a tree: every top-level
// entry of opt/ is served from the volume as a whole (/opt/openlibrary ->
// /1/opt/openlibrary), and every non-directory entry of etc/ is linked
// one by one (/etc/nginx/nginx.conf -> /1/etc/nginx/nginx.conf), so the
// root disk's own /etc directories stay and only the named files change.
func ActivationFor(t *tree.Tree) *Activation {
	a := &Activation{Mount: DefaultMount, Links: []Link{}}
	for _, e := range t.Entries {
		switch {
		case e.Parent() == "opt":
			p := e.Path()
			a.Links = append(a.Links, Link{Path: p, Target: p})
		case e.Top() == "etc" && e.Parent() != "" && e.Type != tree.Dir:
			p := e.Path()
			a.Links = append(a.Links, Link{Path: p, Target: p})
		}
	}
	return a
}

// ImageFile describes an image file in its sidecar manifest.
type ImageFile struct {
	File string `json:"file"`
	// Size is the bytes of the raw image: the file system, and the
	// dm-verity tree when one was written after it (Verity.HashOffset).
	Size       int64  `json:"size"`
	SHA256     string `json:"sha256,omitempty"` // of the raw image, when asked for
	Compressed string `json:"compression"`      // an image.Format: raw, zstd, gpt or qcow2
	// Verity is the dm-verity tree of the file system; its root hash is
	// the digest that identifies the image.
	Verity *verity.Params `json:"verity,omitempty"`
}

// SpoolFile is a manifest written to an unlinked temporary file: its
// size and digest are known, and it serves as the content of the
// manifest's tree entry.
type SpoolFile struct {
	f      *os.File
	Size   int64
	SHA256 tree.Digest
}

// Spool writes the manifest of doc and t to a temporary file.
func Spool(doc Manifest, t *tree.Tree) (*SpoolFile, error) {
	f, err := os.CreateTemp("", "olimage-manifest-*")
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	os.Remove(f.Name()) // the open descriptor keeps it until Close
	h := sha256.New()
	s := &SpoolFile{f: f}
	if s.Size, err = count(io.MultiWriter(f, h), doc, t); err != nil {
		f.Close()
		return nil, err
	}
	h.Sum(s.SHA256[:0])
	return s, nil
}

// Measure is Spool for a check that lays out an image and writes none: it
// counts the manifest's bytes, and neither writes nor hashes them (of a
// million entries, a quarter of a gigabyte written to $TMPDIR for
// nothing). What it returns has no digest and no content to read.
func Measure(doc Manifest, t *tree.Tree) (*SpoolFile, error) {
	n, err := count(io.Discard, doc, t)
	if err != nil {
		return nil, err
	}
	return &SpoolFile{Size: n}, nil
}

// count writes the manifest of doc and t to w and returns its size.
func count(w io.Writer, doc Manifest, t *tree.Tree) (int64, error) {
	cw := &countWriter{w: w}
	doc.Entries = nil
	if err := writeDoc(cw, doc, t); err != nil {
		return 0, fmt.Errorf("manifest: %w", err)
	}
	return cw.n, nil
}

// errMeasured is what opening a measured manifest says.
var errMeasured = errors.New("manifest: measured, not written")

// Open reads the manifest from the start; each reader is independent.
func (s *SpoolFile) Open() (io.ReadCloser, error) {
	if s.f == nil {
		return nil, errMeasured
	}
	return io.NopCloser(io.NewSectionReader(s.f, 0, s.Size)), nil
}

// Close releases the temporary file.
func (s *SpoolFile) Close() error {
	if s.f == nil {
		return nil // measured
	}
	return s.f.Close()
}

// WriteSidecar writes the sidecar manifest: the image file's description
// and, verbatim, the manifest inside the image.
func WriteSidecar(w io.Writer, img ImageFile, m *SpoolFile) error {
	head, err := json.MarshalIndent(struct {
		Schema string    `json:"schema"`
		Image  ImageFile `json:"image"`
	}{SidecarSchema, img}, "", "  ")
	if err != nil {
		return err
	}
	rc, err := m.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	bw := bufio.NewWriter(w)
	bw.Write(head[:len(head)-2]) // reopen after the last field
	bw.WriteString(",\n  \"manifest\": ")
	if _, err := io.Copy(bw, rc); err != nil {
		return err
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// SidecarHead is what a sidecar says of its image file.
type SidecarHead struct {
	Schema string    `json:"schema"`
	Image  ImageFile `json:"image"`
}

// ReadSidecarHead decodes the image description of a sidecar, version 1
// or 2.
func ReadSidecarHead(data []byte) (*SidecarHead, error) {
	var h SidecarHead
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("not a sidecar: %w", err)
	}
	switch h.Schema {
	case SidecarSchema:
		if h.Image.Verity == nil {
			return nil, fmt.Errorf("schema %s without image.verity", h.Schema)
		}
	case SidecarSchemaV1:
		if h.Image.SHA256 == "" {
			return nil, fmt.Errorf("schema %s without image.sha256", h.Schema)
		}
	default:
		return nil, fmt.Errorf("schema %q: want %s or %s", h.Schema, SidecarSchema, SidecarSchemaV1)
	}
	return &h, nil
}
