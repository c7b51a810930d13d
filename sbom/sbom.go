// Package sbom describes a role's volume as a CycloneDX 1.5 software bill
// of materials: the deploys with their revisions and the Python
// distributions of its virtual environments. It reads a tree and the
// files it names; it does not build or verify images.
package sbom

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/internetarchive/olimage/tree"
)

// Volume is what a bill of materials is made of.
type Volume struct {
	Fleet, FleetVersion, Role string
	Epoch                     int64
	TreeDigest                string
	Inputs                    []tree.Input
	Tree                      *tree.Tree
	// Open reads the content of a regular file of Tree.
	Open    func(p string) (io.ReadCloser, error)
	Olimage string // the version of olimage writing it
}

// maxMetadata is how much of a METADATA file is read: its headers come
// first and are short; the long description after them is not needed.
const maxMetadata = 1 << 20

var distInfo = regexp.MustCompile(`(^|/)site-packages/[^/]+\.dist-info/METADATA$`)

// BOM builds the bill of materials of v.
func BOM(v Volume) (*cdx.BOM, error) {
	b := cdx.NewBOM()
	sum := sha256.Sum256([]byte("olimage sbom\x00" + v.Role + "\x00" + v.TreeDigest))
	sum[6] = sum[6]&0x0f | 0x50 // RFC 9562 version 5 (name-based) ...
	sum[8] = sum[8]&0x3f | 0x80 // ... and variant
	b.SerialNumber = fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
	props := []cdx.Property{{Name: "olimage:fleet", Value: v.Fleet}, {Name: "olimage:tree", Value: v.TreeDigest}}
	for _, in := range v.Inputs {
		props = append(props, cdx.Property{Name: "olimage:overlay", Value: fmt.Sprintf("%s %s %s", in.Name, in.Kind, in.Digest)})
	}
	b.Metadata = &cdx.Metadata{
		Timestamp: time.Unix(v.Epoch, 0).UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: "olimage", Version: v.Olimage}}},
		Component: &cdx.Component{
			BOMRef: "volume:" + v.Role, Type: cdx.ComponentTypeFile, Name: v.Role, Version: v.FleetVersion,
			Description: "the /1 data volume of role " + v.Role + " of fleet " + v.Fleet,
			Properties:  &props,
		},
	}
	var comps []cdx.Component
	seen := map[string]bool{}
	ref := func(r string) string {
		for i := 2; seen[r]; i++ {
			r = fmt.Sprintf("%s#%d", strings.SplitN(r, "#", 2)[0], i)
		}
		seen[r] = true
		return r
	}
	for _, d := range deploys(v.Tree) {
		comps = append(comps, cdx.Component{
			BOMRef: ref("deploy:" + d.service + "@" + d.bin), Type: cdx.ComponentTypeApplication,
			Name: d.service, Version: d.bin,
			Properties: &[]cdx.Property{{Name: "olimage:path", Value: "/" + d.path}, {Name: "olimage:active", Value: fmt.Sprint(d.active)}},
		})
	}
	for _, e := range v.Tree.Entries {
		if e.Type != tree.File || e.Name() != "METADATA" || !distInfo.MatchString(e.Path()) {
			continue
		}
		name, version, err := readMetadata(v.Open, e.Path())
		if err != nil {
			return nil, err
		}
		purl := fmt.Sprintf("pkg:pypi/%s@%s", pypiName(name), version)
		comps = append(comps, cdx.Component{
			BOMRef: ref(purl), Type: cdx.ComponentTypeLibrary, Name: name, Version: version, PackageURL: purl,
			Properties: &[]cdx.Property{{Name: "olimage:path", Value: "/" + path.Dir(e.Path())}},
		})
	}
	b.Components = &comps
	deps := make([]string, len(comps))
	for i, c := range comps {
		deps[i] = c.BOMRef
	}
	b.Dependencies = &[]cdx.Dependency{{Ref: b.Metadata.Component.BOMRef, Dependencies: &deps}}
	return b, nil
}

// Write writes b as CycloneDX 1.5 JSON.
func Write(w io.Writer, b *cdx.BOM) error {
	return cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON).SetPretty(true).EncodeVersion(b, cdx.SpecVersion1_5)
}

type deploy struct {
	service, bin, path string
	active             bool
}

// deploys lists the bins under tree.DeploysDir, each marked active when the
// service's link (opt/openlibrary/SERVICE) points at it.
func deploys(t *tree.Tree) []deploy {
	var out []deploy
	for _, e := range t.Entries {
		if e.Type != tree.Dir {
			continue
		}
		rel, ok := strings.CutPrefix(e.Path(), tree.DeploysDir+"/")
		if !ok || strings.Count(rel, "/") != 1 {
			continue
		}
		service, bin, _ := strings.Cut(rel, "/")
		d := deploy{service: service, bin: bin, path: e.Path()}
		if l := t.Get(path.Join("opt/openlibrary", service)); l != nil && l.Type == tree.Symlink {
			d.active = path.Clean(path.Join("opt/openlibrary", l.Target)) == e.Path() || l.Target == "/"+e.Path()
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// ErrMetadata marks a METADATA file without a name or a version.
var ErrMetadata = errors.New("not a distribution's metadata")

func readMetadata(open func(string) (io.ReadCloser, error), p string) (string, string, error) {
	rc, err := open(p)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", p, err)
	}
	defer rc.Close()
	name, version, err := ParseMetadata(io.LimitReader(rc, maxMetadata))
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", p, err)
	}
	return name, version, nil
}

// ParseMetadata reads the Name and Version headers of a Python core
// metadata file (PEP 566: RFC 822 headers, then the description).
func ParseMetadata(r io.Reader) (name, version string, err error) {
	h, err := textproto.NewReader(bufio.NewReader(r)).ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return "", "", fmt.Errorf("%w: %v", ErrMetadata, err)
	}
	name, version = strings.TrimSpace(h.Get("Name")), strings.TrimSpace(h.Get("Version"))
	if name == "" || version == "" {
		return "", "", fmt.Errorf("%w: want Name and Version headers", ErrMetadata)
	}
	return name, version, nil
}

// pypiName normalizes a distribution name as package URLs spell it
// (PEP 503: lower case, runs of -, _ and . as one -).
func pypiName(n string) string {
	return strings.ToLower(nameRun.ReplaceAllString(n, "-"))
}

var nameRun = regexp.MustCompile(`[-_.]+`)
