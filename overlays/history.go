package overlays

import (
	"errors"
	"fmt"
	"path"
	"sort"

	ext4 "github.com/internetarchive/olimage/ext4/reader"
	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
)

// ErrHistory marks a deploy history that cannot be carried over: its
// image is missing or of another fleet, or a bin clashes with the new one.
var ErrHistory = errors.New("refused")

// History reads the manifest of an earlier release's image, whose files
// fs holds: the fleet it was built for and the deploys it records. A
// deploy history needs one (manifest.ReadHistory); it is passed in so that
// overlays, which makes trees, does not depend on the format that
// records them.
type History func(fs interface{ ReadFile(string) ([]byte, error) }) (fleet string, deploys []tree.Deploy, err error)

// serviceBins is what one role's overlays put in a service's history.
type serviceBins struct {
	own  []string // bins deployed by the role, in declaration order
	act  []string // of those, the ones whose link is active
	hist []tree.DeployBin
}

// noteDeploy records a bin a deploy overlay placed.
func (r *reader) noteDeploy(service, bin string, active bool, hist []tree.DeployBin) {
	if r.deploys == nil {
		r.deploys = map[string]*serviceBins{}
	}
	s := r.deploys[service]
	if s == nil {
		s = &serviceBins{}
		r.deploys[service] = s
	}
	s.own = append(s.own, bin)
	if active {
		s.act = append(s.act, bin)
	}
	s.hist = append(s.hist, hist...)
}

// deployOrder lists each service's bins in t newest first: the active
// bins, the role's other deploys (the later declared, the newer), then
// the history carried over in the order the previous image recorded.
// A bin a later overlay removed is left out.
func (r *reader) deployOrder(t *tree.Tree) []tree.Deploy {
	services := make([]string, 0, len(r.deploys))
	for s := range r.deploys {
		services = append(services, s)
	}
	sort.Strings(services)
	var out []tree.Deploy
	for _, svc := range services {
		s := r.deploys[svc]
		d := tree.Deploy{Service: svc}
		seen := map[string]bool{}
		add := func(b tree.DeployBin) {
			if !seen[b.Bin] && t.Get(path.Join(tree.DeploysDir, svc, b.Bin)) != nil {
				seen[b.Bin] = true
				d.Bins = append(d.Bins, b)
			}
		}
		for i := len(s.act) - 1; i >= 0; i-- {
			add(tree.DeployBin{Bin: s.act[i]})
		}
		for i := len(s.own) - 1; i >= 0; i-- {
			add(tree.DeployBin{Bin: s.own[i]})
		}
		for _, b := range s.hist {
			add(b)
		}
		if len(d.Bins) > 0 {
			out = append(out, d)
		}
	}
	return out
}

// readHistory adds to l the newest bins of the deploy's service that the
// previous release's image holds, as it holds them (content, modes,
// owners, times, symlinks), and returns them newest first.
func (r *reader) readHistory(o *roles.Overlay, bin string, l *layer) ([]tree.DeployBin, error) {
	h := o.Deploy.History
	from := r.fleet.Rel(h.From)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: deploy: history from %s: %w: %s", r.fleet.Where(h.Pos), from, ErrHistory, fmt.Sprintf(format, args...))
	}
	if r.history == nil {
		return nil, fail("no reader of image manifests given (Options.History)")
	}
	if err := r.checkPlace(h.From); err != nil {
		return nil, fmt.Errorf("%s: deploy: history: %w", r.fleet.Where(h.Pos), err)
	}
	img, err := image.Open(h.From)
	if err != nil {
		return nil, fmt.Errorf("%s: deploy: history: %w", r.fleet.Where(h.Pos), err)
	}
	r.images = append(r.images, img)
	fs, err := ext4.Open(img, img.Size)
	if err != nil {
		return nil, fail("%v", err)
	}
	fleet, recorded, err := r.history(fs)
	if err != nil {
		return nil, fail("%v", err)
	}
	if fleet != r.fleet.Name {
		return nil, fail("an image of fleet %q, not %q", fleet, r.fleet.Name)
	}
	svc := o.Deploy.Service
	dir := path.Join(tree.DeploysDir, svc)
	present, err := fs.ReadDir(dir)
	if err != nil {
		return nil, fail("no deploys of service %s: %v", svc, err)
	}
	onDisk := map[string]bool{}
	var unordered []string
	for _, e := range present {
		if e.Type == tree.Dir {
			onDisk[e.Name()] = true
			unordered = append(unordered, e.Name())
		}
	}
	// The recorded order first; bins an older manifest did not order
	// count as older than any it did, by name so the choice is stable.
	var order []tree.DeployBin
	seen := map[string]bool{}
	for _, d := range recorded {
		if d.Service != svc {
			continue
		}
		for _, b := range d.Bins {
			if onDisk[b.Bin] && !seen[b.Bin] {
				seen[b.Bin] = true
				order = append(order, tree.DeployBin{Bin: b.Bin, From: from})
			}
		}
	}
	sort.Strings(unordered)
	for _, b := range unordered {
		if !seen[b] {
			order = append(order, tree.DeployBin{Bin: b, From: from})
		}
	}
	if len(order) > h.Keep {
		order = order[:h.Keep]
	}
	var entries []*tree.Entry
	for _, b := range order {
		if b.Bin == bin {
			return nil, fail("bin %s of service %s is also this deploy's bin; deploy a new revision, or carry fewer bins (keep)", bin, svc)
		}
		got, err := subtree(fs, path.Join(dir, b.Bin))
		if err != nil {
			return nil, fail("%v", err)
		}
		entries = append(entries, got...)
	}
	if err := fs.Digest(r.ctx, entries); err != nil {
		return nil, fail("%v", err)
	}
	owners, groups := names(r.fleet.Owners), names(r.fleet.Groups)
	for _, e := range entries {
		e.SetNames(owners[e.UID], groups[e.GID])
		e.SetOverlay(o.Name)
		if l.get(e.Path()) != nil {
			return nil, fail("%s: also supplied by this deploy", e.Path())
		}
		l.add(e)
	}
	return order, nil
}

// subtree lists the directory at p of fs and everything under it.
func subtree(fs *ext4.FS, p string) ([]*tree.Entry, error) {
	root, err := fs.Stat(p)
	if err != nil {
		return nil, err
	}
	root.SetPath(p)
	out := []*tree.Entry{root}
	stack := []string{p}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		kids, err := fs.ReadDir(d)
		if err != nil {
			return nil, err
		}
		for _, k := range kids {
			out = append(out, k)
			if k.Type == tree.Dir {
				stack = append(stack, k.Path())
			}
		}
	}
	return out, nil
}

// names maps ids back to the fleet's names for them; of several names of
// one id, the first in name order.
func names(ids map[string]uint32) map[uint32]string {
	keys := make([]string, 0, len(ids))
	for k := range ids {
		keys = append(keys, k)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	out := map[uint32]string{}
	for _, k := range keys {
		out[ids[k]] = k
	}
	return out
}
