package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/internetarchive/olimage/artifact"
)

type pushOptions struct {
	tags     []string
	jobs     int
	chunk    int
	insecure bool
	json     bool
	progress bool
}

func newPushCmd(e *env) *cobra.Command {
	var opts pushOptions
	cmd := &cobra.Command{
		Use:   "push IMAGE REF",
		Short: "Publish an image to an OCI registry",
		Long: `Publish IMAGE (raw or .img.zst, with its sidecar IMAGE.manifest.json beside
it) to the registry repository REF as an OCI artifact of type
` + artifact.ArtifactType + `: the sidecar is the
config, the raw image is cut into 16 MiB chunks compressed with zstd, one
layer each, so that pulls download in parallel and resume per chunk. The
manifest is annotated with the role, fleet version, tree digest and the
image's identity, its dm-verity root hash (docs/registry.md). The sidecar's signature
IMAGE.manifest.json.sig (olimage sign) and an SBOM IMAGE.sbom.json (olimage
sbom IMAGE > IMAGE.sbom.json) are attached as referrers where they exist.

REF names a tag (registry.example.org/ol/ol-web:2024.01); --tag adds more.
Chunks the registry already has are not uploaded again, and pushing the same
image twice gives the same manifest digest. Prints the manifest digest.

Credentials come from docker's config.json ($DOCKER_CONFIG, else
~/.docker/config.json) and the credential helpers it names (docker login,
podman login --authfile, or a CI's login step write it); basic and token
auth both work. The registry is spoken to over HTTPS; --insecure allows
plain HTTP, and only to a registry on this machine.`,
		Example: `  olimage push out/ol-web-2024.01-979dab02b02f.img registry.example.org/ol/ol-web:2024.01 --tag latest
  olimage push --insecure out/ol-web.img localhost:5000/ol/ol-web:dev --json`,
		Args: exactArgs(2, "IMAGE REF"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPush(e, opts, args[0], args[1], e.stdout)
		},
	}
	cmd.Flags().StringArrayVarP(&opts.tags, "tag", "t", nil, "also tag the image with this tag (repeatable)")
	cmd.Flags().IntVarP(&opts.jobs, "jobs", "j", 2, "chunks to compress and upload at once")
	cmd.Flags().IntVar(&opts.chunk, "chunk", artifact.DefaultChunk>>20, "MiB of raw image per layer")
	addInsecure(cmd, &opts.insecure)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.push/v1)")
	addProgressFlag(cmd, &opts.progress)
	return cmd
}

func runPush(e *env, opts pushOptions, img, ref string, out io.Writer) error {
	if opts.jobs < 1 {
		return usageError{fmt.Errorf("push: -j %d: want 1 or more", opts.jobs)}
	}
	if opts.chunk < 1 || opts.chunk > 256 {
		return usageError{fmt.Errorf("push: --chunk %d: want 1 to 256 (MiB)", opts.chunk)}
	}
	if !artifact.IsRef(ref) && !artifact.IsRef(ref+":tag") { // the tag may come from --tag
		return usageError{fmt.Errorf("push: %q is not a registry reference (HOST/REPO:TAG)", ref)}
	}
	bar := newProgress(e.stderr, opts.progress && !opts.json && !e.quiet)
	c := registryClient(opts.insecure)
	res, err := c.Push(e.ctx, img, ref, artifact.PushOptions{Tags: opts.tags, Jobs: opts.jobs, Chunk: int64(opts.chunk) << 20, Progress: bar.update(ref)})
	bar.done(ref)
	if err != nil {
		return registryHint(err)
	}
	if opts.json {
		return writeJSON(out, struct {
			Schema string `json:"schema"`
			*artifact.PushResult
		}{"olimage.push/v1", res})
	}
	fmt.Fprintf(out, "%s@%s  tags %s  %d layers  %s compressed of %s\n", repoOf(ref), res.Digest, strings.Join(res.Tags, ","), res.Layers, mib(res.Pushed), mib(res.Size))
	if res.Signature != "" {
		fmt.Fprintf(out, "signature %s\n", res.Signature)
	}
	return nil
}

// addInsecure adds --insecure to a command that talks to registries.
func addInsecure(cmd *cobra.Command, insecure *bool) {
	cmd.Flags().BoolVar(insecure, "insecure", false, "plain HTTP, for a registry on localhost only")
}

func registryClient(insecure bool) *artifact.Client {
	return &artifact.Client{Insecure: insecure, UserAgent: "olimage/" + olimageVersion()}
}

// repoOf strips the tag or digest from a reference.
func repoOf(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		return ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i]
	}
	return ref
}

// registryHint adds the next step to registry errors people can act on.
func registryHint(err error) error {
	msg := err.Error()
	// The status comes from the registry's response, not from the text:
	// a path in the message may well hold "401".
	var er *errcode.ErrorResponse
	denied := errors.As(err, &er) && (er.StatusCode == http.StatusUnauthorized || er.StatusCode == http.StatusForbidden)
	switch {
	case denied || strings.Contains(msg, "credential not found"):
		return hintError{err, "log in with docker login (or set DOCKER_CONFIG to a directory with a config.json holding credentials)"}
	case strings.Contains(msg, "http: server gave HTTP response to HTTPS client"):
		return hintError{err, "the registry speaks plain HTTP; --insecure allows that for a registry on localhost"}
	case strings.Contains(msg, "resume"):
		return hintError{err, "run the same command again to resume"}
	}
	return err
}
