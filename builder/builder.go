// Package builder turns a role into an image file: it merges the role's
// overlays, adds the manifest, plans the ext4 layout, and streams it into a
// sink (a sparse raw image, a zstd-compressed one, or a writer such as
// stdout), atomically: a failed or interrupted build leaves nothing at the
// output path. It does not parse fleets (package roles) or lay out ext4
// (package ext4).
package builder

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/internetarchive/olimage/ext4"
	"github.com/internetarchive/olimage/ext4/format"
	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/internal/par"
	"github.com/internetarchive/olimage/internal/trace"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/overlays"
	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
	"github.com/internetarchive/olimage/verity"
)

// Options control one build.
type Options struct {
	// Output is a directory (the file name is derived), a file path ending
	// in .img or .img.zst, or "-" for the raw image on Stdout.
	Output string
	// Compress is image.Raw or image.Zstd for images named by directory;
	// a file name gives its own: NAME.img.zst Zstd, NAME.gpt.img GPT (its
	// partition named for the role's label), NAME.qcow2 Qcow2.
	Compress image.Format
	Stdout   io.Writer
	// Version is olimage's version, recorded in the manifest.
	Version string
	// Progress, if set, is called as bytes of the raw image are produced.
	Progress func(done, total int64)
	// Verity appends the dm-verity hash tree (after a superblock) to the
	// image, at the first byte after the file system, as the role's
	// image: {verity: true} does. The root hash is computed and recorded
	// either way.
	Verity bool
	// SHA256 computes the raw image's sha256 too, which costs hashing
	// every byte of the declared size, empty space included.
	SHA256 bool
	// TmpDir is where members of compressed archives are spooled; ""
	// is $TMPDIR.
	TmpDir string
	// Shared, if set, reads each dir and tar source once for all the
	// roles built with it (overlays.Shared).
	Shared *overlays.Shared

	// afterPlan runs between planning and writing; tests change sources there.
	afterPlan func()
}

// Result describes a built image.
type Result struct {
	Role       string `json:"role"`
	Image      string `json:"image"`              // path, or "-" for stdout
	Manifest   string `json:"manifest,omitempty"` // sidecar path
	Compressed bool   `json:"compressed"`
	Size       int64  `json:"size"`             // bytes of the raw image
	FileSize   int64  `json:"file_size"`        // bytes the file takes on disk
	SHA256     string `json:"sha256,omitempty"` // of the raw image, with Options.SHA256
	// Verity holds the dm-verity root hash that identifies the image, and
	// the tree's parameters; HashOffset is 0 unless the tree was written.
	Verity     *verity.Params `json:"verity"`
	UUID       string         `json:"uuid"`    // file system UUID
	TreeDigest string         `json:"tree"`    // manifest.TreeDigest of the role's tree
	Entries    int            `json:"entries"` // paths in the image, manifest included
	Content    int64          `json:"content"` // bytes of file content
	FreeBlocks uint64         `json:"free_blocks"`
	Inodes     uint64         `json:"inodes"`
	UsedInodes uint64         `json:"used_inodes"`
	Seconds    float64        `json:"seconds"`
	// MemoryEstimate is the peak memory BuildAll expected the build to
	// take, for its memory budget; 0 from Build.
	MemoryEstimate int64 `json:"memory_estimate,omitempty"`
}

// ErrOutput marks a problem with the output path rather than the input.
var ErrOutput = errors.New("output")

// Build builds role r of fleet f.
func Build(ctx context.Context, f *roles.Fleet, r *roles.Role, opts Options) (*Result, error) {
	start := time.Now()
	p, err := prepare(ctx, f, r, opts.Version, overlays.Options{TmpDir: opts.TmpDir, Shared: opts.Shared}, false)
	if err != nil {
		return nil, err
	}
	defer p.close()
	if opts.afterPlan != nil {
		opts.afterPlan()
	}
	res := &Result{Role: r.Name, UUID: p.doc.UUID, TreeDigest: p.digest, Entries: p.tree.Len(), Size: p.layout.Size(), FreeBlocks: p.layout.FreeBlocks()}
	opts.Verity = opts.Verity || r.Image.Verity
	if opts.Verity {
		res.Size += verity.TreeSize(p.layout.Size() / verity.BlockSize)
	}
	res.Inodes, res.UsedInodes = p.layout.Inodes()
	for _, e := range p.tree.Entries {
		if e.Type == tree.File {
			res.Content += e.Size
		}
	}
	salt := sha256.Sum256([]byte("olimage verity salt\x00" + r.Name + "\x00" + p.digest))
	if err := write(ctx, p.layout, f, r, p.digest, salt[:], p.mf, opts, res); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	trace.Notef(ctx, "%s: wrote %s (%d bytes, %d on disk), sidecar %s; dm-verity root hash %s, tree digest %s", r.Name, res.Image, res.Size, res.FileSize, cmp.Or(res.Manifest, "none"), res.Verity.RootHash, res.TreeDigest)
	return res, nil
}

// Checked is what Check found: the role's tree and the image it would make.
type Checked struct {
	Entries int   // paths of the role's tree, without the manifest
	Inputs  int   // overlays merged
	Size    int64 // bytes of the raw image
}

// Check does everything Build does short of writing: merge the overlays,
// measure the manifest and lay out the file system, so that it refuses what
// Build would (a size too small for the content, or not whole blocks).
func Check(ctx context.Context, f *roles.Fleet, r *roles.Role) (*Checked, error) {
	return CheckWith(ctx, f, r, Options{})
}

// CheckWith is Check with the options that bear on reading sources
// (TmpDir, Shared); the others are ignored.
func CheckWith(ctx context.Context, f *roles.Fleet, r *roles.Role, opts Options) (*Checked, error) {
	p, err := prepare(ctx, f, r, "", overlays.Options{TmpDir: opts.TmpDir, Shared: opts.Shared}, true)
	if err != nil {
		return nil, err
	}
	defer p.close()
	return &Checked{Entries: p.merged.Tree.Len(), Inputs: len(p.merged.Inputs), Size: p.layout.Size()}, nil
}

// prepared is a role planned and ready to write.
type prepared struct {
	merged *overlays.Result
	digest string
	doc    manifest.Manifest
	mf     *manifest.SpoolFile
	tree   *tree.Tree
	layout *ext4.Layout
}

func (p *prepared) close() {
	if p.mf != nil {
		p.mf.Close()
	}
	p.merged.Close()
}

// prepare merges role r, checks it and lays out its image. A check
// (validate) only measures the manifest, which no image will hold.
func prepare(ctx context.Context, f *roles.Fleet, r *roles.Role, version string, mo overlays.Options, check bool) (res *prepared, err error) {
	mo.History = manifest.ReadHistory
	merged, err := overlays.MergeWith(ctx, f, r, mo)
	if err != nil {
		return nil, err
	}
	if err := merged.Activated(); err != nil {
		merged.Close()
		return nil, err
	}
	// The content policy reads the tree and its contents and changes
	// nothing, as do the steps below: it runs beside them, a second of
	// a million-entry tree. Its findings are the error when it has any,
	// as when it ran first.
	policyDone := par.Beside(func() error { return merged.Policy(ctx) })
	p := &prepared{merged: merged}
	defer func() {
		if perr := policyDone(); perr != nil {
			err = perr
		}
		if err != nil {
			res = nil
			p.close()
		}
	}()
	p.digest = manifest.TreeDigest(merged.Tree)
	uuid, seed := derive("uuid", r.Name, p.digest), derive("hash seed", r.Name, p.digest)
	uuid[6] = uuid[6]&0x0f | 0x50 // RFC 9562 version 5 (name-based) ...
	uuid[8] = uuid[8]&0x3f | 0x80 // ... and variant, so tools print it as a UUID

	p.doc = manifest.Manifest{
		Schema: manifest.ImageSchema, Olimage: version, Fleet: f.Name, FleetVersion: f.Version,
		Role: r.Name, Label: r.Image.Label, UUID: format.FormatUUID(uuid), Epoch: merged.Epoch,
		TreeDigest: p.digest, Activation: Activation(r, merged.Tree), Inputs: merged.Inputs,
		Deploys: merged.Deploys,
	}
	for _, s := range r.Secrets {
		p.doc.Activation.Secrets = append(p.doc.Activation.Secrets, manifest.SecretPath{
			Path: s.Path, Owner: s.Owner, Group: s.Group, UID: s.UID, GID: s.GID, Mode: fmt.Sprintf("%04o", s.Mode)})
	}
	// Each step takes a second or more on a large tree: look at ctx
	// between them.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	spool := manifest.Spool
	if check {
		spool = manifest.Measure
	}
	if p.mf, err = spool(p.doc, merged.Tree); err != nil {
		return nil, err
	}
	if p.tree, err = withManifest(merged.Tree, p.mf, f, merged.Epoch); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	eo := ext4.Options{
		Label: r.Image.Label, UUID: uuid, HashSeed: seed, Time: merged.Epoch,
		Size: r.Image.Size, Journal: r.Image.Journal,
		RootMode: f.Defaults.DirMode, RootUID: f.Owners["root"], RootGID: f.Groups["root"],
	}
	if r.Image.Headroom.Percent != 0 {
		eo.HeadroomPercent = r.Image.Headroom.Percent
	} else {
		eo.Headroom = r.Image.Headroom.Value
	}
	if pct := r.Image.InodeHeadroom.Percent; pct != 0 {
		eo.InodeHeadroom = int64(float64(p.tree.Len()) * pct / 100)
	} else {
		eo.InodeHeadroom = r.Image.InodeHeadroom.Value
	}
	if p.layout, err = ext4.Plan(p.tree, eo); err != nil {
		var ns *ext4.NoSpaceError
		if errors.As(err, &ns) {
			return nil, fmt.Errorf("%s: %w (set image: {size: %dMiB} or more, or size: auto, in %s)", r.Name, err, (ns.Need+(1<<20)-1)>>20, r.File)
		}
		return nil, fmt.Errorf("%s: %w", r.Name, err)
	}
	return p, nil
}

// Activation is the activation plan the manifest of role r's image
// records: the links its tree calls for and the role's state directories.
func Activation(r *roles.Role, t *tree.Tree) *manifest.Activation {
	a := manifest.ActivationFor(t)
	for _, s := range r.State {
		a.State = append(a.State, manifest.StatePath{
			Path: s.Path, Owner: s.Owner, Group: s.Group, UID: s.UID, GID: s.GID, Mode: fmt.Sprintf("%04o", s.Mode)})
	}
	return a
}

// derive makes a 16-byte value from the role and its tree digest, so the
// same inputs give the same UUID and hash seed on every machine.
func derive(what, role, digest string) [16]byte {
	var out [16]byte
	sum := sha256.Sum256([]byte("olimage " + what + "\x00" + role + "\x00" + digest))
	copy(out[:], sum[:])
	return out
}

// withManifest returns t with .olimage/manifest.json added.
func withManifest(t *tree.Tree, mf *manifest.SpoolFile, f *roles.Fleet, epoch int64) (*tree.Tree, error) {
	root := func(p string, typ tree.Type, mode uint32) *tree.Entry {
		e := (&tree.Entry{Type: typ, Mode: mode, UID: f.Owners["root"], GID: f.Groups["root"],
			ModTime: epoch}).WithPath(p)
		e.SetNames("root", "root")
		e.SetOverlay("olimage")
		return e
	}
	if t.Get(tree.OlimageDir) != nil {
		return nil, fmt.Errorf("%s: reserved for olimage's manifest; no overlay may supply it", tree.OlimageDir)
	}
	d := root(tree.OlimageDir, tree.Dir, 0o755)
	m := root(manifest.Path, tree.File, 0o644)
	m.Size, m.Digest, m.Content = mf.Size, mf.SHA256, mf
	if blocks := (mf.Size + tree.SparseBlock - 1) / tree.SparseBlock; blocks > 0 {
		// JSON holds no NUL byte, so no block of the manifest is zeros:
		// saying so spares planning a read of it to find holes, which a
		// measured manifest (Check's) could not give.
		m.SetData([]tree.BlockRun{{Start: 0, Count: uint32(blocks)}}, true)
	}
	// Put the two where they belong, so that tree.New finds the entries
	// in order rather than sorting them all again.
	i, _ := slices.BinarySearchFunc(t.Entries, tree.OlimageDir, func(e *tree.Entry, p string) int { return e.ComparePath(p) })
	entries := make([]*tree.Entry, 0, len(t.Entries)+2)
	entries = append(append(append(entries, t.Entries[:i]...), d, m), t.Entries[i:]...)
	return tree.New(entries)
}

// FileName is the versioned name of a role's image: role, fleet version (or
// the epoch's date), and the first 12 hex digits of the tree digest.
func FileName(f *roles.Fleet, role, digest string, compress image.Format) string {
	v := f.Version
	if v == "" {
		v = time.Unix(f.Epoch, 0).UTC().Format("20060102")
	}
	name := fmt.Sprintf("%s-%s-%s.img", role, v, digest[:12])
	if compress == image.Zstd {
		name += ".zst"
	}
	return name
}

// target decides the output path and compression.
func target(f *roles.Fleet, role, digest string, opts Options) (path string, compress image.Format, err error) {
	compress = opts.Compress
	if compress == "" {
		compress = image.Raw
	}
	if compress != image.Raw && compress != image.Zstd {
		return "", "", fmt.Errorf("%w: compression %q: want raw or zstd", ErrOutput, compress)
	}
	out := opts.Output
	if out == "" {
		out = "."
	}
	if out == "-" {
		return "-", compress, nil
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() || strings.HasSuffix(out, string(filepath.Separator)) {
		return filepath.Join(out, FileName(f, role, digest, compress)), compress, nil
	}
	switch {
	case strings.HasSuffix(out, ".img.zst"):
		return out, image.Zstd, nil
	case strings.HasSuffix(out, ".gpt.img"):
		return out, image.GPT, nil
	case strings.HasSuffix(out, ".qcow2"):
		return out, image.Qcow2, nil
	case strings.HasSuffix(out, ".img"):
		return out, image.Raw, nil
	}
	return "", "", fmt.Errorf("%w: %s: not a directory, and not a file name ending in .img, .img.zst, .gpt.img or .qcow2", ErrOutput, out)
}
