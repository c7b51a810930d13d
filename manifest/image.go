package manifest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/internetarchive/olimage/tree"
)

// Where an image keeps its manifest, relative to the volume root.
const (
	Dir  = ".olimage"
	Path = ".olimage/manifest.json"
)

// ImageSchema identifies the manifest written into every image.
const ImageSchema = "olimage.manifest/v1"

// SidecarSchema identifies the manifest written beside an image file.
const SidecarSchema = "olimage.sidecar/v1"

// Image is the manifest inside an image: what it was built from and every
// entry it holds, except the manifest itself.
type Image struct {
	Schema       string  `json:"schema"`
	Olimage      string  `json:"olimage"` // version of the olimage that built it
	Fleet        string  `json:"fleet"`
	FleetVersion string  `json:"fleet_version,omitempty"`
	Role         string  `json:"role"`
	Label        string  `json:"label"`
	UUID         string  `json:"uuid"`
	Epoch        int64   `json:"epoch"`
	TreeDigest   string  `json:"tree"` // TreeDigest of the entries
	Inputs       []Input `json:"inputs"`
	Entries      []Entry `json:"entries"`
}

// ImageFile describes an image file in its sidecar manifest.
type ImageFile struct {
	File       string `json:"file"`
	Size       int64  `json:"size"`   // bytes of the raw image
	SHA256     string `json:"sha256"` // of the raw image
	Compressed string `json:"compression"`
}

// SpoolFile is a manifest written to an unlinked temporary file: its
// size and digest are known, and it serves as the content of the
// manifest's tree entry.
type SpoolFile struct {
	f      *os.File
	Size   int64
	SHA256 string
}

// Spool writes the manifest of doc and t to a temporary file.
func Spool(doc Image, t *tree.Tree) (*SpoolFile, error) {
	f, err := os.CreateTemp("", "olimage-manifest-*")
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	os.Remove(f.Name()) // the open descriptor keeps it until Close
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	doc.Entries = nil
	if err := writeDoc(cw, doc, t); err != nil {
		f.Close()
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return &SpoolFile{f: f, Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// Open reads the manifest from the start; each reader is independent.
func (s *SpoolFile) Open() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(s.f, 0, s.Size)), nil
}

// Close releases the temporary file.
func (s *SpoolFile) Close() error { return s.f.Close() }

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
	bw := bufio.NewWriter(w)
	bw.Write(head[:len(head)-2]) // reopen after the last field
	bw.WriteString(",\n  \"manifest\": ")
	rc, _ := m.Open()
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
