package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/artifact"
	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/internal/trace"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/operand"
	"github.com/internetarchive/olimage/tree"
	"github.com/internetarchive/olimage/verity"
)

type inspectOptions struct{ json, insecure bool }

func newInspectCmd(e *env) *cobra.Command {
	var opts inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect IMAGE|REF",
		Short: "Describe an image: file system, use and manifest",
		Long: `Read IMAGE (raw, .zst, .gz, or a GPT disk with one ext4 partition) without
mounting it and print its label, UUID, size, features, block and inode use,
and the summary of the manifest it carries (role, fleet, olimage version,
tree digest, inputs). Needs no root.

The dm-verity section comes from the sidecar beside IMAGE
(IMAGE.manifest.json) when there is one: root hash, salt, algorithm, block
sizes, data blocks and hash offset. Without a sidecar, a tree appended to a
raw image is still found by its superblock after the file system, but its
root hash is not known (olimage verify --expect-root-hash checks one).


For REF, an image in a registry (HOST/REPO:TAG or HOST/REPO@sha256:...),
only its sidecar manifest is fetched: the manifest digest, the raw image's
size and sha256, label, UUID and the manifest summary; no file-system
figures. Credentials and --insecure as for push.`,
		Example: `  olimage inspect out/ol-web-2024.01-979dab02b02f.img
  olimage inspect /dev/vdb --json
  olimage inspect registry.example.org/ol/ol-web:2024.01`,
		Args: exactArgs(1, "IMAGE|REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(e, opts, args[0], e.stdout)
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.inspect/v1)")
	addInsecure(cmd, &opts.insecure)
	return cmd
}

type inspectJSON struct {
	Schema     string          `json:"schema"`
	Image      string          `json:"image"`
	Format     image.Format    `json:"format"`
	Partition  int             `json:"partition,omitempty"`
	Size       int64           `json:"size"`
	Label      string          `json:"label"`
	UUID       string          `json:"uuid"`
	BlockSize  int             `json:"block_size"`
	Blocks     uint64          `json:"blocks"`
	FreeBlocks uint64          `json:"free_blocks"`
	Inodes     uint32          `json:"inodes"`
	FreeInodes uint32          `json:"free_inodes"`
	Features   []string        `json:"features"`
	Clean      bool            `json:"clean"`
	Manifest   *manifestHeadJS `json:"manifest,omitempty"`
	// Verity is the dm-verity tree: from the sidecar, or (root hash
	// empty) from a superblock found after the file system.
	Verity  *verity.Params `json:"verity,omitempty"`
	Sidecar string         `json:"sidecar,omitempty"` // the sidecar Verity came from
}

type manifestHeadJS struct {
	Role         string       `json:"role"`
	Fleet        string       `json:"fleet"`
	FleetVersion string       `json:"fleet_version,omitempty"`
	Olimage      string       `json:"olimage"`
	Epoch        int64        `json:"epoch"`
	Tree         string       `json:"tree"`
	Inputs       []tree.Input `json:"inputs"`
}

func runInspect(e *env, opts inspectOptions, name string, out io.Writer) error {
	if _, err := os.Stat(name); err != nil && artifact.IsRef(name) {
		return inspectRef(e, opts, name, out)
	}
	src, err := operand.OpenImage(e.ctx, name, operand.NoTree)
	if err != nil {
		return err
	}
	defer src.Close()
	info := src.FS().Info()
	doc := inspectJSON{
		Schema: "olimage.inspect/v1", Image: name, Format: src.File().Format, Partition: src.File().Partition, Size: src.File().Size,
		Label: info.Label, UUID: info.UUID, BlockSize: info.BlockSize, Blocks: info.Blocks, FreeBlocks: info.FreeBlocks,
		Inodes: info.Inodes, FreeInodes: info.FreeInodes, Features: info.Features, Clean: info.Clean,
	}
	if m, err := src.EmbeddedHead(); err == nil {
		doc.Manifest = &manifestHeadJS{Role: m.Role, Fleet: m.Fleet, FleetVersion: m.FleetVersion, Olimage: m.Olimage, Epoch: m.Epoch, Tree: m.TreeDigest, Inputs: m.Inputs}
	}
	doc.Verity, doc.Sidecar = verityOf(name, src.File().Format == image.Raw && src.File().Partition == 0, int64(info.Blocks)*int64(info.BlockSize))
	if doc.Sidecar != "" {
		trace.Notef(e.ctx, "%s: dm-verity parameters from the sidecar %s", name, doc.Sidecar)
	} else {
		trace.Notef(e.ctx, "%s: no sidecar with dm-verity parameters at %s", name, name+image.SidecarSuffix)
	}
	if opts.json {
		return writeJSON(out, doc)
	}
	printInspect(out, doc, info.NeedsRecovery)
	return nil
}

func printInspect(out io.Writer, d inspectJSON, needsRecovery bool) {
	where := string(d.Format)
	if d.Partition > 0 {
		where += fmt.Sprintf(", GPT partition %d", d.Partition)
	}
	used := d.Blocks - d.FreeBlocks
	fmt.Fprintf(out, "image:     %s (%s)\n", tree.Quote(d.Image), where)
	fmt.Fprintf(out, "label:     %s\n", tree.Quote(d.Label))
	fmt.Fprintf(out, "uuid:      %s\n", d.UUID)
	fmt.Fprintf(out, "size:      %s, %d blocks of %d bytes\n", mib(d.Size), d.Blocks, d.BlockSize)
	fmt.Fprintf(out, "used:      %s of blocks (%d%%), %d of %d inodes\n", mib(int64(used)*int64(d.BlockSize)), pct(used, d.Blocks), d.Inodes-d.FreeInodes, d.Inodes)
	fmt.Fprintf(out, "features:  %s\n", strings.Join(d.Features, " "))
	state := "clean"
	if !d.Clean {
		state = "not clean"
	}
	if needsRecovery {
		state += ", journal needs recovery"
	}
	fmt.Fprintf(out, "state:     %s\n", state)
	if v := d.Verity; v != nil {
		root := v.RootHash
		if root == "" {
			root = "not known (no sidecar)"
		}
		fmt.Fprintf(out, "verity:    root hash %s\n", root)
		tree := "not written"
		if v.HashOffset != 0 {
			tree = fmt.Sprintf("at byte %d (--hash-offset)", v.HashOffset)
		}
		fmt.Fprintf(out, "           %s, %d/%d byte blocks, %d data blocks, salt %s\n", v.Algorithm, v.DataBlockSize, v.HashBlockSize, v.DataBlocks, v.Salt)
		fmt.Fprintf(out, "           tree %s", tree)
		if d.Sidecar != "" {
			fmt.Fprintf(out, "; from %s", d.Sidecar)
		}
		fmt.Fprintln(out)
	}
	printHead(out, d.Manifest)
}

// printHead prints the summary of an image's manifest.
func printHead(out io.Writer, m *manifestHeadJS) {
	if m == nil {
		fmt.Fprintln(out, "manifest:  none (not built by olimage)")
		return
	}
	v := m.Fleet
	if m.FleetVersion != "" {
		v += " " + m.FleetVersion
	}
	// Every string here is the image's to choose.
	fmt.Fprintf(out, "manifest:  role %s of fleet %s, built by olimage %s\n", tree.Quote(m.Role), tree.Quote(v), tree.Quote(m.Olimage))
	fmt.Fprintf(out, "tree:      %s\n", tree.Quote(m.Tree))
	fmt.Fprintf(out, "epoch:     %d\n", m.Epoch)
	for i, in := range m.Inputs {
		label := "inputs:"
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(out, "%-10s %-20s %-7s %s\n", label, tree.Quote(in.Name), tree.Quote(in.Kind), tree.Quote(short(in.Digest)))
	}
}

// verityOf returns the dm-verity parameters of the image at name: from
// its sidecar if it has one, else from a superblock at fsEnd in a raw
// image file (without the root hash, which only the sidecar knows).
func verityOf(name string, raw bool, fsEnd int64) (*verity.Params, string) {
	side := name + image.SidecarSuffix
	if data, err := os.ReadFile(side); err == nil {
		if h, err := manifest.ReadSidecarHead(data); err == nil && h.Image.Verity != nil {
			return h.Image.Verity, side
		}
	}
	if !raw {
		return nil, ""
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, ""
	}
	defer f.Close()
	p, err := verity.ReadParams(f, fsEnd)
	if err != nil {
		return nil, ""
	}
	return p, ""
}

// inspectRefJSON is inspect's document for an image in a registry: what
// its sidecar says, no file-system figures.
type inspectRefJSON struct {
	Schema   string          `json:"schema"`
	Image    string          `json:"image"`
	Format   string          `json:"format"` // "oci"
	Digest   string          `json:"digest"` // of the OCI manifest
	Size     int64           `json:"size"`
	SHA256   string          `json:"sha256,omitempty"`
	Verity   *verity.Params  `json:"verity,omitempty"`
	Label    string          `json:"label"`
	UUID     string          `json:"uuid"`
	Manifest *manifestHeadJS `json:"manifest"`
}

func inspectRef(e *env, opts inspectOptions, ref string, out io.Writer) error {
	c := registryClient(opts.insecure)
	data, digest, err := c.Sidecar(e.ctx, ref)
	if err != nil {
		return registryHint(err)
	}
	side, err := artifact.ParseSidecar(data)
	if err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	m := side.Manifest
	doc := inspectRefJSON{
		Schema: "olimage.inspect/v1", Image: ref, Format: "oci", Digest: digest,
		Size: side.Image.Size, SHA256: side.Image.SHA256, Verity: side.Image.Verity, Label: m.Label, UUID: m.UUID,
		Manifest: &manifestHeadJS{Role: m.Role, Fleet: m.Fleet, FleetVersion: m.FleetVersion, Olimage: m.Olimage, Epoch: m.Epoch, Tree: m.TreeDigest, Inputs: m.Inputs},
	}
	if opts.json {
		return writeJSON(out, doc)
	}
	fmt.Fprintf(out, "image:     %s (oci)\n", ref)
	fmt.Fprintf(out, "digest:    %s\n", digest)
	fmt.Fprintf(out, "label:     %s\n", doc.Label)
	fmt.Fprintf(out, "uuid:      %s\n", doc.UUID)
	fmt.Fprintf(out, "size:      %s\n", mib(doc.Size))
	if doc.Verity != nil {
		fmt.Fprintf(out, "verity:    root hash %s\n", doc.Verity.RootHash)
	}
	if doc.SHA256 != "" {
		fmt.Fprintf(out, "sha256:    %s\n", doc.SHA256)
	}
	printHead(out, doc.Manifest)
	return nil
}

func pct(a, b uint64) uint64 {
	if b == 0 {
		return 0
	}
	return a * 100 / b
}
