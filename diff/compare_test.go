package diff_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/internetarchive/olimage/diff"
	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// opener opens sides held in memory: names ending in .img as images,
// anything else as roles, each a tree of one file whose digest is the
// name's last letter. Images read by manifest carry one; roles never do.
// TestCompare in package operand compares real images and roles.
type opener struct {
	errs map[string]error // by "NAME READ": what does not open

	mu     sync.Mutex // Compare opens both sides at once
	opened []string   // "NAME READ"
	closed []string
}

func (o *opener) IsImage(name string) bool { return strings.HasSuffix(name, ".img") }

func (o *opener) Open(ctx context.Context, name string, read diff.Read) (diff.Side, error) {
	o.mu.Lock()
	asked := fmt.Sprintf("%s %s", name, readName[read])
	o.opened = append(o.opened, asked)
	o.mu.Unlock()
	if err := o.errs[asked]; err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(name, ".img")
	t, err := tree.New([]*tree.Entry{(&tree.Entry{Type: tree.File, Size: 1, Digest: tree.Digest{base[len(base)-1]}}).WithPath("a")})
	if err != nil {
		return nil, err
	}
	s := &side{o: o, name: name, kind: "role", tr: t}
	if o.IsImage(name) {
		s.kind = "image"
		if read == diff.ReadManifests {
			s.head = &manifest.Manifest{Role: base}
		}
	}
	return s, nil
}

var readName = map[diff.Read]string{diff.ReadManifests: "manifests", diff.ReadDigests: "digests", diff.ReadListing: "listing"}

type side struct {
	o          *opener
	name, kind string
	tr         *tree.Tree
	head       *manifest.Manifest
}

func (s *side) Name() string                  { return s.name }
func (s *side) Kind() string                  { return s.kind }
func (s *side) Tree() *tree.Tree              { return s.tr }
func (s *side) LoadTree() (*tree.Tree, error) { return s.tr, nil }
func (s *side) Manifest() *manifest.Manifest  { return s.head }
func (s *side) Body() []byte                  { return nil }

func (s *side) EmbeddedHead() (*manifest.Manifest, error) {
	return nil, errors.New("no manifest inside " + s.name)
}

func (s *side) Close() error {
	s.o.mu.Lock()
	defer s.o.mu.Unlock()
	s.o.closed = append(s.o.closed, s.name)
	return nil
}

// TestCompareReads checks what Compare asks its Opener for: manifests
// when both sides carry one, content otherwise (an image that used its
// manifest read again, hashed), and two images read in full listed, to
// be compared byte by byte, unless their digests are wanted; and that it
// closes what it opened when a side does not open.
func TestCompareReads(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a, b   string
		opts   diff.CompareOptions
		errs   map[string]error
		opened []string // sorted
		closed []string // sorted, before Result.Close
		err    string
	}{
		{name: "two images by manifests", a: "x.img", b: "y.img",
			opened: []string{"x.img manifests", "y.img manifests"}},
		{name: "an image and a role", a: "x.img", b: "y",
			opened: []string{"x.img digests", "x.img manifests", "y manifests"}, closed: []string{"x.img"}},
		{name: "two images without manifests", a: "x.img", b: "y.img", opts: diff.CompareOptions{NoManifests: true},
			opened: []string{"x.img listing", "y.img listing"}},
		{name: "two images' content", a: "x.img", b: "y.img", opts: diff.CompareOptions{Content: true},
			opened: []string{"x.img listing", "y.img listing"}},
		{name: "two images' tree digests", a: "x.img", b: "y.img", opts: diff.CompareOptions{NoManifests: true, TreeDigests: true},
			opened: []string{"x.img digests", "y.img digests"}},
		{name: "an image's content and a role", a: "x.img", b: "y", opts: diff.CompareOptions{Content: true},
			opened: []string{"x.img digests", "y digests"}},
		{name: "one side fails", a: "x.img", b: "y", errs: map[string]error{"y manifests": errors.New("y: no such role")},
			opened: []string{"x.img manifests", "y manifests"}, closed: []string{"x.img"}, err: "y: no such role"},
		{name: "both fail alike", a: "x", b: "y", errs: map[string]error{"x manifests": errors.New("fleet: bad"), "y manifests": errors.New("fleet: bad")},
			opened: []string{"x manifests", "y manifests"}, err: "fleet: bad"},
		{name: "an image read again fails", a: "x.img", b: "y", errs: map[string]error{"x.img digests": errors.New("x.img: gone")},
			opened: []string{"x.img digests", "x.img manifests", "y manifests"}, closed: []string{"x.img", "y"}, err: "x.img: gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &opener{errs: tc.errs}
			res, err := diff.Compare(context.Background(), tc.a, tc.b, o, tc.opts)
			slices.Sort(o.opened)
			slices.Sort(o.closed)
			if d := cmp.Diff(tc.opened, o.opened); d != "" {
				t.Errorf("opened (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.closed, o.closed); d != "" {
				t.Errorf("closed before the result was (-want +got):\n%s", d)
			}
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := []diff.Kind{diff.Content}
			if len(res.Changes) != 1 || !cmp.Equal(res.Changes[0].Kinds, want) {
				t.Errorf("changes %+v, want a's content", res.Changes)
			}
			res.Close()
		})
	}
}
