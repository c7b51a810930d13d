package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/internetarchive/olimage/builder"
	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/internal/registrytest"
	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/roles"
)

const testChunk = 1 << 20

// buildImage builds a small image with incompressible content spread
// over several chunks and zero chunks between, and returns its path. o
// gives the compression and whether to add the sha256 and verity tree.
func buildImage(t *testing.T, version string, o builder.Options) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	blob := make([]byte, 3<<20)
	for i := range blob {
		blob[i] = byte(rng.Uint32())
	}
	testfs.WriteFiles(t, dir, map[string]string{
		"olimage.yaml":     "fleet: t\nversion: \"" + version + "\"\nepoch: 2024-01-01T00:00:00Z\n",
		"roles/web.yaml":   "image: {headroom: 4MiB}\noverlays:\n  - {name: tree, dir: src}\n",
		"src/opt/app/blob": string(blob),
		"src/etc/app.conf": "version " + version + "\n",
	})
	f, err := roles.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Role("web")
	if err != nil {
		t.Fatal(err)
	}
	o.Output, o.Version = t.TempDir(), "test"
	switch o.Compress {
	case image.GPT: // formats a file name gives
		o.Output, o.Compress = filepath.Join(o.Output, "web.gpt.img"), ""
	case image.Qcow2:
		o.Output, o.Compress = filepath.Join(o.Output, "web.qcow2"), ""
	}
	res, err := builder.Build(context.Background(), f, r, o)
	if err != nil {
		t.Fatal(err)
	}
	return res.Image
}

// volumeSHA256 is the sha256 of the volume in an image file of any
// format, read through package image.
func volumeSHA256(t *testing.T, p string) string {
	t.Helper()
	vol, err := image.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	return testfs.SHA256(t, io.NewSectionReader(vol, 0, vol.Size))
}

// wantPulled fails t unless the image file out, pulled, holds the volume
// of the image file img.
func wantPulled(t *testing.T, out, img string) {
	t.Helper()
	if got, want := testfs.FileSHA256(t, out), volumeSHA256(t, img); got != want {
		t.Fatalf("pulled %s: sha256 %s, want %s", out, got, want)
	}
}

func readSidecar(t *testing.T, img string) *Sidecar {
	t.Helper()
	data, err := os.ReadFile(img + ".manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSidecar(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fsck(t *testing.T, img string) {
	t.Helper()
	registrytest.Need(t, "e2fsck")
	testenv.Fsck(t, img)
}

// noFiles fails if dir holds anything but the named files.
func onlyFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s holds %q, want %q", dir, got, want)
	}
}

var local = &Client{Insecure: true}

// Push an image (raw and zstd), pull it back to a file: the same bytes,
// with its sidecar; pushing again gives the same manifest digest; skopeo
// reads and copies what was pushed.
func TestPushPullRoundTrip(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts builder.Options
	}{
		{"raw-sha256", builder.Options{Compress: image.Raw, SHA256: true}},
		{"zstd", builder.Options{Compress: image.Zstd}},
		{"raw-verity-tree", builder.Options{Compress: image.Raw, Verity: true}},
		{"gpt", builder.Options{Compress: image.GPT, SHA256: true}},
		{"qcow2", builder.Options{Compress: image.Qcow2, Verity: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := buildImage(t, "2024.01", tc.opts)
			side := readSidecar(t, img)
			want := volumeSHA256(t, img)
			ref := reg.Host + "/ol/web-" + tc.name + ":2024.01"
			res, err := local.Push(ctx, img, ref, PushOptions{Chunk: testChunk, Tags: []string{"latest"}})
			if err != nil {
				t.Fatal(err)
			}
			if want := int((side.Image.Size + testChunk - 1) / testChunk); res.Layers != want || want < 4 {
				t.Errorf("got %d layers, want %d (and at least 4)", res.Layers, want)
			}
			again, err := local.Push(ctx, img, ref, PushOptions{Chunk: testChunk, Jobs: 1})
			if err != nil {
				t.Fatal(err)
			}
			if again.Digest != res.Digest {
				t.Errorf("pushing twice gave manifests %s and %s", res.Digest, again.Digest)
			}
			dir := t.TempDir()
			out := filepath.Join(dir, "web.img")
			for _, r := range []string{ref, reg.Host + "/ol/web-" + tc.name + ":latest", reg.Host + "/ol/web-" + tc.name + "@" + res.Digest} {
				os.Remove(out)
				pr, err := local.Pull(ctx, r, out, PullOptions{Jobs: 3})
				if err != nil {
					t.Fatal(err)
				}
				if got := testfs.FileSHA256(t, out); got != want || pr.SHA256 != side.Image.SHA256 || pr.Image != side.Identity() {
					t.Fatalf("pulled %s: sha256 %s, want %s; result %+v", r, got, want, pr)
				}
				if pr.Written >= pr.Size/2 {
					t.Errorf("wrote %d of %d bytes: zero blocks should stay holes", pr.Written, pr.Size)
				}
			}
			if blocks := statBlocks(t, out); blocks*512 >= side.Image.Size/2 {
				t.Errorf("pulled file uses %d bytes of disk for %d: not sparse", blocks*512, side.Image.Size)
			}
			fsck(t, out)
			onlyFiles(t, dir, "web.img", "web.img.manifest.json")
			if s := readSidecar(t, out); s.Identity() != side.Identity() {
				t.Errorf("pulled sidecar names %s, want %s", s.Identity(), side.Identity())
			}
			skopeoReads(t, ref, res.Digest, side)
		})
	}
}

// skopeoReads checks with skopeo, an independent client, that the pushed
// manifest is an OCI manifest of our artifact type and copies whole.
func skopeoReads(t *testing.T, ref, digest string, side *Sidecar) {
	t.Helper()
	registrytest.Need(t, "skopeo")
	out, err := exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+ref).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	if d := "sha256:" + hex.EncodeToString(sha256Sum(out)); d != digest {
		t.Errorf("skopeo reads a manifest of digest %s, olimage pushed %s", d, digest)
	}
	var m struct {
		MediaType    string            `json:"mediaType"`
		ArtifactType string            `json:"artifactType"`
		Annotations  map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != ArtifactType || m.Annotations[AnnotationImageDigest] != side.Identity() || m.Annotations[AnnotationRole] != "web" {
		t.Errorf("skopeo inspect: artifactType %q, annotations %v", m.ArtifactType, m.Annotations)
	}
	layout := t.TempDir()
	out, err = exec.Command("skopeo", "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+layout+":x").CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	idx, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(idx), digest) {
		t.Errorf("skopeo copy's index.json does not name %s:\n%s", digest, idx)
	}
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// With basic auth on, a pull without credentials fails naming the
// reference; with docker config.json credentials it works.
func TestAuth(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{User: "ci", Password: "s3cret"})
	ctx := context.Background()
	img := buildImage(t, "1", builder.Options{})
	ref := reg.Host + "/ol/web:1"
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	_, err := local.Push(ctx, img, ref, PushOptions{Chunk: testChunk})
	if err == nil || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), "credential not found") {
		t.Fatalf("push without credentials: got %v, want credentials not found, naming %s", err, ref)
	}
	writeDockerConfig(t, reg.Host, "ci", "wrong")
	if _, err := local.Push(ctx, img, ref, PushOptions{Chunk: testChunk}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("push with a wrong password: got %v, want a 401", err)
	}
	writeDockerConfig(t, reg.Host, "ci", "s3cret")
	res, err := local.Push(ctx, img, ref, PushOptions{Chunk: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "web.img")
	if _, err := local.Pull(ctx, ref, out, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	wantPulled(t, out, img)
	registrytest.Need(t, "skopeo")
	raw, err := exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", "ci:s3cret", "docker://"+ref).CombinedOutput()
	if err != nil || !strings.Contains(string(raw), ArtifactType) {
		t.Fatalf("skopeo inspect with credentials: %v\n%s", err, raw)
	}
	_ = res
}

// Token auth, as Docker Hub and GHCR do it: the client answers the Bearer
// challenge by getting a token with the docker config's credentials.
func TestTokenAuth(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	proxy := registrytest.NewProxy(t, reg)
	proxy.RequireToken("ci", "s3cret")
	ctx := context.Background()
	img := buildImage(t, "1", builder.Options{})
	ref := proxy.Host + "/ol/web:1"
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	writeDockerConfig(t, proxy.Host, "ci", "wrong")
	if _, err := local.Push(ctx, img, ref, PushOptions{Chunk: testChunk}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("push with a wrong password: got %v, want a 401", err)
	}
	writeDockerConfig(t, proxy.Host, "ci", "s3cret")
	if _, err := local.Push(ctx, img, ref, PushOptions{Chunk: testChunk}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "web.img")
	if _, err := local.Pull(ctx, ref, out, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	wantPulled(t, out, img)
}

func writeDockerConfig(t *testing.T, host, user, pass string) {
	t.Helper()
	cred := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	cfg := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, cred)
	if err := os.WriteFile(filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The registry stops after the first layer of a pull: the pull fails
// naming the reference, leaves nothing under the target name, and a pull
// once it is back resumes from the layers already written.
func TestPullResumesAfterRegistryStops(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := context.Background()
	img, ref := pushImage(t, reg.Host)
	dir := t.TempDir()
	out := filepath.Join(dir, "web.img")
	var stopped atomic.Bool
	_, err := local.Pull(ctx, ref, out, PullOptions{Jobs: 1, Retries: 1, Progress: func(done, total int64) {
		if done >= 2*testChunk && !stopped.Swap(true) {
			reg.Stop()
		}
	}})
	if err == nil || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("pull from a stopped registry: got %v, want an error naming %s that says it resumes", err, ref)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed pull left %s: %v", out, err)
	}
	reg.Start()
	res, err := local.Pull(ctx, ref, out, PullOptions{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed < 2 {
		t.Errorf("resumed %d layers, want the 2 or more written before the registry stopped", res.Resumed)
	}
	wantPulled(t, out, img)
	fsck(t, out)
	onlyFiles(t, dir, "web.img", "web.img.manifest.json")
}

// Faults served by a proxy: 5xx answers and connections cut mid-layer
// are retried; a layer whose bytes do not match its digest fails the pull
// with ErrDigest and leaves nothing behind.
func TestPullFaults(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	proxy := registrytest.NewProxy(t, reg)
	ctx := context.Background()
	img, ref := pushImage(t, proxy.Host)
	want := volumeSHA256(t, img)
	blob := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")
	}
	// Fail every other blob request; sidecar and layer fetches outlast it.
	var n atomic.Int64
	cases := []struct {
		name  string
		fault registrytest.Fault
		err   error
	}{
		{"503", func(r *http.Request) *registrytest.Action {
			if blob(r) && n.Add(1)%2 == 1 {
				return &registrytest.Action{Status: http.StatusServiceUnavailable}
			}
			return nil
		}, nil},
		{"cut", func(r *http.Request) *registrytest.Action {
			if blob(r) && n.Add(1)%2 == 1 {
				return &registrytest.Action{CutAfter: 1000}
			}
			return nil
		}, nil},
		{"corrupt", func(r *http.Request) *registrytest.Action {
			if blob(r) && !strings.Contains(r.URL.Path, "/blobs/sha256:"+configDigest(t, img)) {
				return &registrytest.Action{Corrupt: true}
			}
			return nil
		}, ErrDigest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proxy.SetFault(tc.fault)
			defer proxy.SetFault(nil)
			dir := t.TempDir()
			out := filepath.Join(dir, "web.img")
			_, err := local.Pull(ctx, ref, out, PullOptions{Jobs: 2, Retries: 2})
			if tc.err == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got := testfs.FileSHA256(t, out); got != want {
					t.Fatalf("sha256 %s, want %s", got, want)
				}
				return
			}
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), ref) {
				t.Fatalf("got %v, want %v naming %s", err, tc.err, ref)
			}
			onlyFiles(t, dir)
		})
	}
}

func configDigest(t *testing.T, img string) string {
	data, err := os.ReadFile(img + ".manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(sha256Sum(data))
}

// Bad references: a missing tag, a repository holding another artifact
// type, a registry that is not running, --insecure to a remote host.
func TestPullBadReferences(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := context.Background()
	pushImage(t, reg.Host)
	// Another client's artifact: an image manifest of another type.
	other := pushForeign(t, reg.Host+"/ol/other:1")
	dir := t.TempDir()
	for _, tc := range []struct {
		ref    string
		client *Client
		want   string
		err    error
	}{
		{reg.Host + "/ol/web:nope", local, "not found", nil},
		{other, local, "", ErrNotImage},
		{"127.0.0.1:1/ol/web:1", local, "connection refused", nil},
		{"registry.example.org/ol/web:1", local, "", ErrInsecure},
	} {
		_, err := tc.client.Pull(ctx, tc.ref, filepath.Join(dir, "x.img"), PullOptions{Retries: -1})
		if err == nil || !strings.Contains(err.Error(), tc.ref) || (tc.err != nil && !errors.Is(err, tc.err)) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pull %s: got %v, want an error naming it (%v %q)", tc.ref, err, tc.err, tc.want)
		}
	}
	onlyFiles(t, dir)
}

// pushForeign pushes an artifact of another type with plain HTTP calls.
func pushForeign(t *testing.T, ref string) string {
	t.Helper()
	host, rest, _ := strings.Cut(ref, "/")
	repo, tag, _ := strings.Cut(rest, ":")
	cfg := []byte("{}")
	d := "sha256:" + hex.EncodeToString(sha256Sum(cfg))
	resp, err := http.Post("http://"+host+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	if !strings.HasPrefix(loc, "http") {
		loc = "http://" + host + loc
	}
	req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest="+d, strings.NewReader(string(cfg)))
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("blob upload: %v %v", err, resp.Status)
	}
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.example.other+json","digest":%q,"size":2},"layers":[]}`, d)
	req, _ = http.NewRequest(http.MethodPut, "http://"+host+"/v2/"+repo+"/manifests/"+tag, strings.NewReader(m))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("manifest upload: %v %v", err, resp.Status)
	}
	return ref
}

// TestPushReferrers pushes an image with its sidecar's signature
// (IMAGE.manifest.json.sig) and IMAGE.sbom.json
// beside it: each is attached to the image as a referrer of its own type,
// found through the registry's referrers API with its bytes intact.
func TestPushReferrers(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := context.Background()
	img := buildImage(t, "1", builder.Options{})
	sig := "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"
	bom := `{"bomFormat":"CycloneDX","specVersion":"1.5","version":1}` + "\n"
	for suffix, body := range map[string]string{".manifest.json.sig": sig, ".sbom.json": bom} {
		if err := os.WriteFile(img+suffix, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ref := reg.Host + "/ol/web:1"
	res, err := local.Push(ctx, img, ref, PushOptions{Chunk: testChunk})
	if err != nil {
		t.Fatal(err)
	}
	repo, _, err := local.repository(ref)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := repo.Resolve(ctx, "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, artifactType, pushed, body string
	}{
		{"signature", SignatureType, res.Signature, sig},
		{"sbom", SBOMType, res.SBOM, bom},
	} {
		if tc.pushed == "" {
			t.Errorf("push reports no %s referrer", tc.name)
			continue
		}
		var found []string
		err = repo.Referrers(ctx, subject, tc.artifactType, func(refs []ocispec.Descriptor) error {
			for _, r := range refs {
				found = append(found, r.Digest.String())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 || found[0] != tc.pushed {
			t.Fatalf("%s referrers of %s: %v, want [%s]", tc.name, subject.Digest, found, tc.pushed)
		}
		d, err := digest.Parse(tc.pushed)
		if err != nil {
			t.Fatal(err)
		}
		m, err := content.FetchAll(ctx, repo, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: sizeOf(t, repo, d)})
		if err != nil {
			t.Fatal(err)
		}
		var man ocispec.Manifest
		if err := json.Unmarshal(m, &man); err != nil {
			t.Fatal(err)
		}
		body, err := content.FetchAll(ctx, repo, man.Layers[0])
		if err != nil || string(body) != tc.body || man.Layers[0].MediaType != tc.artifactType {
			t.Fatalf("%s layer %s: %q, %v; want %q", tc.name, man.Layers[0].MediaType, body, err, tc.body)
		}
	}
}

func sizeOf(t *testing.T, repo *remote.Repository, d digest.Digest) int64 {
	t.Helper()
	desc, err := repo.Resolve(context.Background(), d.String())
	if err != nil {
		t.Fatal(err)
	}
	return desc.Size
}

// pushImage builds an image and pushes it as host/ol/web:1.
func pushImage(t *testing.T, host string) (img, ref string) {
	t.Helper()
	img = buildImage(t, "1", builder.Options{})
	ref = host + "/ol/web:1"
	if _, err := local.Push(context.Background(), img, ref, PushOptions{Chunk: testChunk}); err != nil {
		t.Fatal(err)
	}
	return img, ref
}

// An image whose bytes are not the ones its sidecar names (changed after
// the build, pushed all the same): every chunk matches its own digest,
// but the pull fails on the image's identity, by sha256 or by dm-verity
// root hash, and leaves nothing under the target name.
func TestPullImageNotMatchingSidecar(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts builder.Options
	}{
		{"sha256", builder.Options{SHA256: true}},
		{"verity", builder.Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := buildImage(t, "1", tc.opts)
			f, err := os.OpenFile(img, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 1)
			f.ReadAt(b, 1100) // in the superblock
			b[0] ^= 0xff
			if _, err := f.WriteAt(b, 1100); err != nil {
				t.Fatal(err)
			}
			f.Close()
			ref := reg.Host + "/ol/changed-" + tc.name + ":1"
			if _, err := local.Push(ctx, img, ref, PushOptions{Chunk: testChunk}); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			_, err = local.Pull(ctx, ref, filepath.Join(dir, "web.img"), PullOptions{})
			if !errors.Is(err, ErrDigest) || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), tc.name) {
				t.Fatalf("got %v, want %v naming %s and %s", err, ErrDigest, ref, tc.name)
			}
			onlyFiles(t, dir)
		})
	}
}

// Layers from a registry are untrusted: chunks refuses any that are not
// olimage chunks tiling the image exactly.
func TestChunksRefusesBadLayers(t *testing.T) {
	layer := func(off, size string) ocispec.Descriptor {
		return ocispec.Descriptor{MediaType: ChunkType, Size: 100, Digest: digest.FromString(off),
			Annotations: map[string]string{AnnotationOffset: off, AnnotationRawSize: size}}
	}
	side := &Sidecar{}
	side.Image.Size = 2 << 20
	for _, tc := range []struct {
		name   string
		layers []ocispec.Descriptor
	}{
		{"gap", []ocispec.Descriptor{layer("0", "1048576"), layer("1048577", "1048575")}},
		{"overlap", []ocispec.Descriptor{layer("0", "1048576"), layer("1000", "1048576")}},
		{"short", []ocispec.Descriptor{layer("0", "1048576")}},
		{"long", []ocispec.Descriptor{layer("0", "2097152"), layer("2097152", "1")}},
		{"huge", []ocispec.Descriptor{layer("0", "9223372036854775807")}},
		{"negative", []ocispec.Descriptor{layer("0", "-1"), layer("-1", "2097153")}},
		{"no annotation", []ocispec.Descriptor{{MediaType: ChunkType, Size: 1}}},
		{"other type", []ocispec.Descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Size: 1,
			Annotations: map[string]string{AnnotationOffset: "0", AnnotationRawSize: "2097152"}}}},
		{"none", nil},
	} {
		img := &resolved{side: side, manifest: ocispec.Manifest{Layers: tc.layers}}
		if _, err := img.chunks("r"); !errors.Is(err, ErrNotImage) {
			t.Errorf("%s: got %v, want %v", tc.name, err, ErrNotImage)
		}
	}
	img := &resolved{side: side, manifest: ocispec.Manifest{Layers: []ocispec.Descriptor{layer("0", "1048576"), layer("1048576", "1048576")}}}
	if cs, err := img.chunks("r"); err != nil || len(cs) != 2 {
		t.Errorf("two chunks tiling the image: %v, %v", cs, err)
	}
}

// A sidecar from a registry is untrusted: ParseSidecar returns an error
// or a sidecar with a positive size and a valid identity, never panics.
func FuzzParseSidecar(f *testing.F) {
	f.Add([]byte(`{"schema":"olimage.sidecar/v1","image":{"file":"x.img","size":4096,"sha256":"` + strings.Repeat("a", 64) + `","compression":"raw"},"manifest":{"schema":"olimage.manifest/v1","entries":[]}}`))
	f.Add([]byte(`{"schema":"olimage.sidecar/v2","image":{"size":1,"verity":{"root_hash":"x"}},"manifest":{}}`))
	f.Add([]byte(`{"schema":"olimage.sidecar/v2","manifest":`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSidecar(b)
		if err != nil {
			return
		}
		if s.Image.Size <= 0 || len(s.Identity()) < 64 {
			t.Fatalf("accepted a sidecar with size %d and identity %q", s.Image.Size, s.Identity())
		}
	})
}

// Credentials from a docker credential helper, as CI runners configure
// them (credHelpers per registry, or credsStore for all): a helper program
// on PATH answers "get" with the registry's user and secret.
func TestCredentialHelper(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{User: "ci", Password: "s3cret"})
	ctx := context.Background()
	img := buildImage(t, "1", builder.Options{})
	bin := t.TempDir()
	asked := filepath.Join(bin, "asked")
	helper := "#!/bin/sh\n" +
		"[ \"$1\" = get ] || exit 1\n" +
		"read host\n" +
		"echo \"$host\" >> " + asked + "\n" +
		"printf '{\"ServerURL\":\"%s\",\"Username\":\"ci\",\"Secret\":\"s3cret\"}' \"$host\"\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-olimagetest"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, cfg := range []string{
		fmt.Sprintf(`{"credHelpers": {%q: "olimagetest"}}`, reg.Host),
		`{"credsStore": "olimagetest"}`,
	} {
		t.Setenv("DOCKER_CONFIG", t.TempDir())
		if err := os.WriteFile(filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(asked)
		ref := reg.Host + "/ol/web:1"
		if _, err := local.Push(ctx, img, ref, PushOptions{Chunk: testChunk}); err != nil {
			t.Fatalf("push with %s: %v", cfg, err)
		}
		out := filepath.Join(t.TempDir(), "web.img")
		if _, err := local.Pull(ctx, ref, out, PullOptions{}); err != nil {
			t.Fatalf("pull with %s: %v", cfg, err)
		}
		if got, err := os.ReadFile(asked); err != nil || !strings.Contains(string(got), reg.Host) {
			t.Errorf("with %s the helper was not asked for %s: %q, %v", cfg, reg.Host, got, err)
		}
	}
}
