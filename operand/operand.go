// Package operand opens what a read command (diff, verify, ls, cat,
// extract, inspect, sbom) is given, as a tree: an image file (raw,
// compressed or a GPT disk), a manifest JSON (a plan, an image manifest or
// a sidecar), a registry reference, or a role of a fleet (what would be
// built). It chooses how to read each; it does not read an overlay's
// sources (package overlays), compare trees (package diff) or parse ext4
// (package ext4/reader).
package operand

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/internetarchive/olimage/artifact"
	"github.com/internetarchive/olimage/ext4/reader"
	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/internal/trace"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/overlays"
	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
)

// Kinds of operand.
const (
	Image    = "image"
	Manifest = "manifest"
	Role     = "role"
)

// Operand is one opened argument of a read command. It is what package
// diff compares (diff.Side) and what package verify checks.
type Operand struct {
	kind string
	name string
	tr   *tree.Tree
	head *manifest.Manifest
	body []byte
	fs   *reader.FS
	file *image.File

	closers []func() error

	parsed bool // EmbeddedManifest's result, once read
	embM   *manifest.Manifest
	embT   *tree.Tree
	embErr error
}

// Kind is Image, Manifest or Role.
func (s *Operand) Kind() string { return s.kind }

// Name is the operand as the user gave it.
func (s *Operand) Name() string { return s.name }

// Tree holds the entries, without lost+found and .olimage/ for images; nil
// for a manifest in olimage's layout until LoadTree.
func (s *Operand) Tree() *tree.Tree { return s.tr }

// Manifest is the image manifest the operand carries, if any: inside an
// image, or the document itself for a manifest or sidecar file. Its
// entries are in the tree, not in it.
func (s *Operand) Manifest() *manifest.Manifest { return s.head }

// Body, for a manifest in the layout olimage writes, is the document
// itself, not yet split or decoded, so that diff decodes only what
// differs (manifest.Differing); Tree is then nil until LoadTree.
func (s *Operand) Body() []byte { return s.body }

// FS is an image's file system; nil for other kinds.
func (s *Operand) FS() *reader.FS { return s.fs }

// File is an image's file; nil for other kinds.
func (s *Operand) File() *image.File { return s.file }

// Close releases what the operand holds open.
func (s *Operand) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	return errors.Join(errs...)
}

// Options say how much to read.
type Options struct {
	// Fleet is the fleet directory for role operands.
	Fleet string
	// Role, if set, returns one of the fleet's roles in place of
	// roles.Load and Fleet.Role: for a caller that has loaded the fleet
	// already, or says more of its errors.
	Role func(name string) (*roles.Fleet, *roles.Role, error)
	// Manifests makes an image's tree come from its embedded manifest
	// when it has one, reading no file content: fast, and trusting the
	// manifest (olimage verify checks that it holds).
	Manifests bool
	// Registry fetches the sidecars of registry references; nil is a
	// client with the default settings.
	Registry *artifact.Client
}

// Read says how much of an image OpenImage reads into the tree.
type Read int

// What OpenImage reads.
const (
	// NoTree opens the file system and leaves Tree nil, for commands that
	// read single paths or the manifest.
	NoTree Read = iota
	// Listing reads every entry's metadata, no content.
	Listing
	// Digests also hashes every file, in parallel: what comparing
	// content needs.
	Digests
	// FromManifest takes the tree from the manifest the image carries,
	// reading no content, and falls back to Digests without one.
	FromManifest
)

// ErrUnknown is returned for an argument that is no file and no role.
var ErrUnknown = errors.New("not an image, a manifest or a role")

// The image read errors a read command tells apart, the reader's own
// sentinels: its callers branch on them without importing ext4/reader.
var (
	ErrCorrupt     = reader.ErrCorrupt     // the file system is damaged
	ErrUnsupported = reader.ErrUnsupported // it uses a feature the reader lacks
	ErrNotFound    = reader.ErrNotFound    // no such path in the image
)

// IsImage reports whether Open takes name for an image: an existing file
// (or device) that is not a JSON manifest.
func IsImage(name string) bool {
	if name == "-" {
		return true
	}
	fi, err := os.Stat(name)
	return err == nil && !fi.IsDir() && (isPipe(fi) || !isJSON(name))
}

// isPipe reports a file that can be read only once: it is taken for an
// image without peeking at its content.
func isPipe(fi os.FileInfo) bool { return fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0 }

// Open opens name: an existing file is an image or a manifest (told apart
// by content), a registry reference (HOST/REPO:TAG) the sidecar of the
// image it names, anything else a role of opts.Fleet.
func Open(ctx context.Context, name string, opts Options) (*Operand, error) {
	fi, err := os.Stat(name)
	if name != "-" && err != nil && artifact.IsRef(name) {
		return OpenRef(ctx, name, opts.Registry)
	}
	if name == "-" || err == nil && !fi.IsDir() {
		if name != "-" && !isPipe(fi) && isJSON(name) {
			return openManifest(ctx, name)
		}
		read := Digests
		if opts.Manifests {
			read = FromManifest
		}
		return OpenImage(ctx, name, read)
	}
	if looksLikeFile(name) {
		if _, err := os.Stat(name); err != nil {
			return nil, err // the user meant a file: say why it cannot be read
		}
	}
	role := opts.Role
	if role == nil {
		role = func(name string) (*roles.Fleet, *roles.Role, error) {
			f, err := roles.LoadContext(ctx, opts.Fleet)
			if err != nil {
				return nil, nil, NoFleetError(name, err)
			}
			r, err := f.Role(name)
			return f, r, err
		}
	}
	f, r, err := role(name)
	if errors.Is(err, roles.ErrNoRole) {
		return nil, fmt.Errorf("%s: %w: no such file, and the fleet in %s has no such role", name, ErrUnknown, opts.Fleet)
	}
	if err != nil {
		return nil, err
	}
	res, err := overlays.MergeWith(ctx, f, r, overlays.Options{History: manifest.ReadHistory})
	if err != nil {
		return nil, err
	}
	return &Operand{kind: Role, name: name, tr: res.Tree, closers: []func() error{res.Close}}, nil
}

// NoFleetError says that name is no file and that the fleet that could
// declare it as a role does not load.
func NoFleetError(name string, err error) error {
	return fmt.Errorf("%s: %w (and the fleet does not load: %v)", name, ErrUnknown, err)
}

// looksLikeFile tells a path from a role name: roles have no slashes and
// no image or manifest extension.
// LooksLikeFile reports whether name is meant as a file rather than a
// role: it has a slash or an image or manifest file's extension.
func LooksLikeFile(name string) bool { return looksLikeFile(name) }

func looksLikeFile(name string) bool {
	if strings.ContainsRune(name, '/') {
		return true
	}
	for _, ext := range []string{".img", ".zst", ".gz", ".json", ".raw"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

func isJSON(name string) bool {
	f, err := os.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	br := bufio.NewReader(f)
	for {
		c, err := br.ReadByte()
		if err != nil {
			return false
		}
		if !strings.ContainsRune(" \t\r\n", rune(c)) {
			return c == '{'
		}
	}
}

// OpenRef reads the sidecar manifest of the image a registry reference
// names, without its layers. Its Kind is Manifest.
func OpenRef(ctx context.Context, ref string, c *artifact.Client) (*Operand, error) {
	if c == nil {
		c = &artifact.Client{}
	}
	data, _, err := c.Sidecar(ctx, ref)
	if err != nil {
		return nil, err
	}
	src := &Operand{kind: Manifest, name: ref}
	if err := src.useManifest(data); err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	return src, nil
}

func openManifest(ctx context.Context, name string) (*Operand, error) {
	if err := image.Settle(name); err != nil { // a sidecar an interrupted build was replacing
		return nil, err
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	src := &Operand{kind: Manifest, name: name}
	if err := src.useManifest(data); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	trace.Notef(ctx, "%s: a manifest document (%d bytes), read as the tree it lists", name, len(data))
	return src, nil
}

// useManifest takes s's tree from a manifest, plan or sidecar document:
// its entries as chunks when olimage wrote it, else decoded.
func (s *Operand) useManifest(data []byte) error {
	schema, head, body, err := manifest.Head(data)
	if err != nil {
		return fmt.Errorf("not a manifest: %w", err)
	}
	switch schema {
	case manifest.SidecarSchema, manifest.ImageSchema, manifest.PlanSchema:
	default:
		return fmt.Errorf("schema %q: want %s, %s or %s", schema, manifest.ImageSchema, manifest.SidecarSchema, manifest.PlanSchema)
	}
	s.head = head
	if manifest.Chunked(body) {
		s.body = body
		return nil
	}
	_, t, err := parseManifest(body)
	s.tr = t
	return err
}

// LoadTree returns the operand's tree, decoding its manifest if need be.
func (s *Operand) LoadTree() (*tree.Tree, error) {
	if s.tr != nil || s.body == nil {
		return s.tr, nil
	}
	chunks, ok := manifest.Chunks(s.body)
	if !ok {
		_, t, err := parseManifest(s.body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		s.tr = t
		return t, nil
	}
	entries := make([]*tree.Entry, 0, len(chunks))
	for _, c := range chunks {
		e, err := c.Decode()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		entries = append(entries, e)
	}
	t, err := tree.New(entries)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	s.tr = t
	return t, nil
}

// parseManifest reads an image manifest or a plan into a tree.
func parseManifest(data []byte) (*manifest.Manifest, *tree.Tree, error) {
	var m manifest.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, nil, err
	}
	entries := make([]*tree.Entry, 0, len(m.Entries))
	for _, me := range m.Entries {
		e, err := manifest.ToEntry(me)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	t, err := tree.New(entries)
	if err != nil {
		return nil, nil, err
	}
	m.Entries = nil
	return &m, t, nil
}

// OpenImage opens an image file and reads its tree as read says.
func OpenImage(ctx context.Context, name string, read Read) (*Operand, error) {
	img, err := image.OpenContext(ctx, name)
	if err != nil {
		return nil, err
	}
	fs, err := reader.Open(img, img.Size)
	if err != nil {
		img.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s := &Operand{kind: Image, name: name, fs: fs, file: img, closers: []func() error{img.Close}}
	info := fs.Info()
	used := int64(info.Blocks-min(info.FreeBlocks, info.Blocks)) * int64(info.BlockSize)
	trace.Notef(ctx, "%s: %s", name, describeImage(img, used))
	if reads := trace.ReadsOf(ctx); reads != nil {
		// A full read covers the blocks in use but the journal and the
		// inode table's free slots, which no read visits.
		total := max(used-info.JournalSize-int64(info.FreeInodes)*int64(info.InodeSize), int64(info.BlockSize))
		if fn := reads(name, total); fn != nil {
			img.Watch(fn)
		}
	}
	if read == FromManifest {
		if data, err := s.manifestBytes(); err == nil && s.useManifest(data) == nil {
			trace.Notef(ctx, "%s: using the manifest the image carries (%s), reading no file content", name, manifest.Path)
			return s, nil
		}
		s.head, s.body, s.tr = nil, nil, nil
		read = Digests
		trace.Notef(ctx, "%s: no usable %s: hashing every file", name, manifest.Path)
	}
	if read == NoTree {
		return s, nil
	}
	t, err := fs.Tree(ctx, read != Listing)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.tr, err = volumeOnly(t)
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// describeImage says what kind of image img is, for -v.
func describeImage(img *image.File, used int64) string {
	s := string(img.Format) + " ext4"
	if img.Format == image.Zstd || img.Format == image.Gzip {
		s = string(img.Format) + "-compressed ext4, decompressed to a temporary file"
	}
	if img.Partition > 0 {
		s += fmt.Sprintf(" in GPT partition %d", img.Partition)
	}
	return s + fmt.Sprintf(", file system of %d bytes, %d in use", img.Size, used)
}

// HashedTree reads an image operand's tree from its file system, hashing
// every file, without opening the image again (which stdin cannot be).
func (s *Operand) HashedTree(ctx context.Context) (*tree.Tree, error) {
	return s.fsTree(ctx, true)
}

// ListedTree is HashedTree without the hashing: every entry's metadata.
func (s *Operand) ListedTree(ctx context.Context) (*tree.Tree, error) {
	return s.fsTree(ctx, false)
}

func (s *Operand) fsTree(ctx context.Context, hashed bool) (*tree.Tree, error) {
	if s.fs == nil {
		return nil, errors.New("not an image")
	}
	t, err := s.fs.Tree(ctx, hashed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	return volumeOnly(t)
}

// embedded reads the manifest inside an image.
func (s *Operand) embedded() (*manifest.Manifest, *tree.Tree, error) {
	data, err := s.manifestBytes()
	if err != nil {
		return nil, nil, err
	}
	return parseManifest(data)
}

// manifestBytes reads the manifest file inside an image: mapped straight
// from the image when it lies in one run of blocks (as olimage writes it),
// which saves copying tens of megabytes of a large tree's manifest. The
// head of a 20k-entry image's 7 MB manifest: 69 µs and 19 kB mapped,
// against 9.1 ms and 7.3 MB read (BenchmarkManifestMapped,
// BenchmarkManifestRead, means of four alternating runs).
func (s *Operand) manifestBytes() ([]byte, error) {
	if off, n, ok, err := s.fs.Contiguous(manifest.Path); err == nil && ok {
		if data, unmap, ok := s.file.Map(off, n); ok {
			s.closers = append(s.closers, unmap)
			return data, nil
		}
	}
	return s.fs.ReadFile(manifest.Path)
}

// EmbeddedHead returns the fields of the manifest inside an image that
// come before its entries (role, fleet, digests, inputs), decoding none of
// the entries: what a summary needs, at a small cost however large the tree.
func (s *Operand) EmbeddedHead() (*manifest.Manifest, error) {
	if s.fs == nil {
		return nil, errors.New("not an image")
	}
	if s.parsed {
		return s.embM, s.embErr
	}
	data, err := s.manifestBytes()
	if err != nil {
		return nil, err
	}
	_, head, _, err := manifest.Head(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", manifest.Path, err)
	}
	return head, nil
}

// EmbeddedManifest returns the manifest inside an image operand with its
// entries as a tree, read once and kept.
func (s *Operand) EmbeddedManifest() (*manifest.Manifest, *tree.Tree, error) {
	if s.fs == nil {
		return nil, nil, errors.New("not an image")
	}
	if !s.parsed {
		s.parsed = true
		s.embM, s.embT, s.embErr = s.embedded()
	}
	return s.embM, s.embT, s.embErr
}

// volumeOnly drops what ext4 and olimage add to every volume and no
// overlay supplies: lost+found and the manifest.
func volumeOnly(t *tree.Tree) (*tree.Tree, error) {
	var keep []*tree.Entry
	for _, e := range t.Entries {
		switch {
		case e.Top() == "lost+found" || e.Top() == tree.OlimageDir:
		default:
			keep = append(keep, e)
		}
	}
	return tree.New(keep)
}
