package activate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// What activation makes on the root disk so that a VM boots serving from
// its volume, beyond the plain links of the manifest's plan:
//
//   - Unit files the image ships under etc/systemd/system are written to
//     the root disk as regular files: systemd reads them when it starts,
//     before the volume is mounted, and never finds a unit through a link
//     into it. Each .service unit also gets a
//     drop-in ordering it after olimage-activate.service and requiring the
//     volume's mount. Enablement links (*.wants/, *.requires/) are made
//     with the image's own text, so they name the unit file on the root
//     disk.
//   - A top-level opt/ directory that holds deploys (opt/X/deploys/SVC/BIN)
//     becomes a real directory whose entries are linked one by one, and
//     the active link of each service (opt/X/SVC) points straight at the
//     bin in the volume. That link lives on the root disk, so Switch can
//     repoint it to another bin the image carries.

// goal is one path activation makes on the root disk: a symlink or a
// regular file.
type goal struct {
	Path    string // relative to the root
	Target  string // the symlink's text
	File    bool   // a regular file holding Content, not a symlink
	Content string
	// Deploy, for the active link of a deploy, says which.
	Deploy *deployLink
}

// deployLink is the active link of one deployed service.
type deployLink struct {
	Service string   // openlibrary
	Dir     string   // in the volume: opt/openlibrary/deploys/openlibrary
	Bin     string   // the bin linked
	Default string   // the bin the image links
	Bins    []string // every bin the image carries, sorted
}

// maxUnitSize bounds a unit file written to the root disk: they are a few
// hundred bytes, and the journal holds them.
const maxUnitSize = 1 << 20

// DropIn is the name of the drop-in activation gives each unit it writes.
const DropIn = "olimage.conf"

// unitKinds are the units activation stops when the image drops them.
var unitKinds = []string{".service", ".socket", ".timer", ".path"}

// holds reports whether the view's node, a file, holds content.
func holds(n node, content string) bool {
	if n.written {
		return n.text == content
	}
	return n.fi != nil && n.fi.Mode().IsRegular() && fileHolds(n.real, content)
}

// placed reports whether the journal records a link or a file at p.
func (j *Journal) placed(p string) bool {
	return j.find(OpLink, p) >= 0 || j.find(OpWrite, p) >= 0
}

// goals works out what the plan of m asks for on the root disk, reading
// unit files from the volume mounted at dir. switchTo names, by service,
// the bins to link instead of those the image links; the bins the
// journal links stay linked while the image stays the same.
func (r *run) goals(m *manifest.Manifest, dir string, img *ImageRef, switchTo map[string]string) ([]goal, error) {
	vol := img.Volume
	entries := make(map[string]*manifest.Entry, len(m.Entries))
	for i := range m.Entries {
		entries[m.Entries[i].Path] = &m.Entries[i]
	}
	same := r.j.Image != nil && r.j.Image.UUID == img.UUID && r.j.Image.Tree == img.Tree
	if len(switchTo) > 0 && !same {
		return nil, fmt.Errorf("volume %s: %w; activate it first", vol, ErrNotActive)
	}
	var deploys []goal
	over := map[string]string{} // root path -> volume path, for deploy links
	for _, l := range m.Activation.Links {
		if !holdsDeploys(entries, l) {
			continue
		}
		for _, e := range m.Entries {
			if parentOf(e.Path) != l.Target {
				continue
			}
			p := l.Path + "/" + path.Base(e.Path)
			d := deployOf(entries, l.Target, e)
			if d == nil {
				deploys = append(deploys, goal{Path: p, Target: path.Join(vol, e.Path)})
				continue
			}
			if b, ok := switchTo[d.Service]; ok {
				if !slices.Contains(d.Bins, b) {
					return nil, fmt.Errorf("switch %s %s: %w; the image carries %s", d.Service, b, ErrNoBin, strings.Join(d.Bins, ", "))
				}
				d.Bin = b
			} else if k := r.j.find(OpLink, p); same && k >= 0 {
				if b, ok := strings.CutPrefix(r.j.Actions[k].Target, path.Join(vol, d.Dir)+"/"); ok && slices.Contains(d.Bins, b) {
					d.Bin = b
				}
			}
			over[p] = path.Join(d.Dir, d.Bin)
			deploys = append(deploys, goal{Path: p, Target: path.Join(vol, d.Dir, d.Bin), Deploy: d})
		}
	}
	for s := range switchTo {
		if !slices.ContainsFunc(deploys, func(g goal) bool { return g.Deploy != nil && g.Deploy.Service == s }) {
			return nil, fmt.Errorf("switch %s: %w in the image", s, ErrNoDeploy)
		}
	}
	res := &resolver{entries: entries, over: over, volume: vol, links: m.Activation.Links}
	var out, units []goal
	for _, l := range m.Activation.Links {
		switch {
		case holdsDeploys(entries, l):
			for _, g := range deploys {
				if parentOf(g.Path) == l.Path {
					out = append(out, g)
				}
			}
			continue
		case !under(l.Path, UnitDir) || l.Path != l.Target || entries[l.Target] == nil:
			out = append(out, goal{Path: l.Path, Target: path.Join(vol, l.Target)})
			continue
		}
		e := entries[l.Target]
		if e.Type == "symlink" && isWantsDir(parentOf(l.Path)) {
			out = append(out, goal{Path: l.Path, Target: e.Target})
			continue
		}
		real, err := res.resolve(l.Target)
		if errors.Is(err, errOutside) && e.Type == "symlink" {
			out = append(out, goal{Path: l.Path, Target: e.Target}) // masked: /dev/null
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("/%s: %w", l.Path, err)
		}
		if t := entries[real]; t == nil || t.Type != "file" {
			out = append(out, goal{Path: l.Path, Target: path.Join(vol, l.Target)})
			continue
		}
		text, err := readVolumeFile(dir, real)
		if err != nil {
			return nil, fmt.Errorf("/%s: unit file %s: %w", l.Path, real, err)
		}
		out = append(out, goal{Path: l.Path, File: true, Content: writtenHeader(path.Join(vol, l.Target)) + text})
		// Services only: sockets, timers and paths come before
		// basic.target, which olimage-activate.service comes after, so
		// ordering them after it would be a cycle. The services they
		// trigger wait for activation all the same.
		if parentOf(l.Path) == UnitDir && path.Ext(l.Path) == ".service" {
			units = append(units, goal{Path: l.Path + ".d/" + DropIn, File: true, Content: dropIn(vol)})
		}
	}
	for _, u := range units {
		if !slices.ContainsFunc(out, func(g goal) bool { return g.Path == u.Path }) {
			out = append(out, u)
		}
	}
	return out, nil
}

// ErrNoBin and ErrNoDeploy are returned by Switch for a bin or a service
// the image does not carry.
var (
	ErrNoBin    = errors.New("no such bin")
	ErrNoDeploy = errors.New("no such deployed service")
)

// dropIn orders a unit the image ships after activation, and makes it
// require the volume's mount.
func dropIn(volume string) string {
	return writtenHeader("the volume at "+volume) + `[Unit]
After=` + ActivateUnitName + `
RequiresMountsFor=` + volume + `
`
}

func isDir(e *manifest.Entry) bool { return e != nil && e.Type == "dir" }

func isWantsDir(d string) bool {
	return parentOf(d) == UnitDir && (strings.HasSuffix(d, ".wants") || strings.HasSuffix(d, ".requires") || strings.HasSuffix(d, ".upholds"))
}

// holdsDeploys says whether l links the directory of /opt that holds
// tree.DeploysDir, which is linked entry by entry so that each
// deploy's active link can be switched on its own.
func holdsDeploys(entries map[string]*manifest.Entry, l manifest.Link) bool {
	return l.Path == l.Target && l.Target == path.Dir(tree.DeploysDir) && isDir(entries[tree.DeploysDir])
}

// deployOf returns the deploy whose active link e, an entry of the
// directory top, is: a symlink to DeploysDir/SVC/BIN, a directory.
func deployOf(entries map[string]*manifest.Entry, top string, e manifest.Entry) *deployLink {
	if e.Type != "symlink" || path.IsAbs(e.Target) {
		return nil
	}
	t := path.Join(top, e.Target)
	rest, ok := strings.CutPrefix(t, tree.DeploysDir+"/")
	if !ok || strings.Count(rest, "/") != 1 || !isDir(entries[t]) {
		return nil
	}
	d := &deployLink{Service: parentOf(rest), Dir: parentOf(t), Bin: path.Base(t), Default: path.Base(t)}
	for p, x := range entries {
		if parentOf(p) == d.Dir && x.Type == "dir" {
			d.Bins = append(d.Bins, path.Base(p))
		}
	}
	slices.Sort(d.Bins)
	return d
}

// errOutside is returned for a symlink that leaves what the volume serves.
var errOutside = errors.New("leaves the volume")

// resolver follows symlinks through the manifest's entries as the root
// disk will see them once activated: an absolute link into a path the
// plan serves goes into the volume, and a deploy's active link goes to
// the bin activation links.
type resolver struct {
	entries map[string]*manifest.Entry
	over    map[string]string
	volume  string
	links   []manifest.Link
}

func (x *resolver) resolve(p string) (string, error) {
	parts := strings.Split(p, "/")
	cur := ""
	for hops := 0; len(parts) > 0; {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if cur == "" {
				return "", errOutside
			}
			cur = parentOf(cur)
			continue
		}
		next := path.Join(cur, c)
		var t string
		if o, ok := x.over[next]; ok {
			t = "/" + o
		} else if e := x.entries[next]; e == nil {
			return "", fmt.Errorf("%s: not in the volume", next)
		} else if e.Type == "symlink" {
			t = e.Target
		} else {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		if path.IsAbs(t) {
			rel, ok := strings.CutPrefix(t, x.volume+"/")
			if !ok {
				rel = strings.TrimPrefix(path.Clean(t), "/")
				if !slices.ContainsFunc(x.links, func(l manifest.Link) bool { return under(rel, l.Path) }) {
					if _, ok := x.over[rel]; !ok && !x.served(rel) {
						return "", errOutside
					}
				}
			}
			cur, t = "", rel
		}
		parts = append(strings.Split(t, "/"), parts...)
	}
	return cur, nil
}

// served reports whether a deploy link serves rel on the root disk.
func (x *resolver) served(rel string) bool {
	for p := range x.over {
		if under(rel, p) {
			return true
		}
	}
	return false
}

// readVolumeFile reads a unit file from the volume mounted at dir,
// following no symlink.
func readVolumeFile(dir, rel string) (string, error) {
	p, err := openParent(dir, rel, "", false)
	if err != nil {
		return "", err
	}
	defer p.close()
	f, err := p.open()
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxUnitSize+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxUnitSize {
		return "", fmt.Errorf("larger than %d bytes", maxUnitSize)
	}
	return string(b), nil
}

// systemd tells a live systemd about the units a run changed: units no
// longer wanted are stopped, units are reloaded, and the units the image
// enables are started, or restarted when the run changed anything. Nothing waits for a unit: they are ordered after
// olimage-activate.service, which runs this.
func (r *run) systemd(ctx context.Context, plan []Change, goals []goal) error {
	sc := systemctlFor(r.opts.Root, r.opts.Systemctl)
	if sc == nil || r.opts.DryRun {
		return nil
	}
	kept := map[string]bool{}
	var enabled []string
	for _, g := range goals {
		kept[g.Path] = true
		if isWantsDir(parentOf(g.Path)) && !slices.Contains(enabled, path.Base(g.Path)) {
			enabled = append(enabled, path.Base(g.Path))
		}
	}
	changed, anyChange := false, false
	var stop []string
	for _, c := range plan {
		anyChange = anyChange || c.Op != OpKeep
		if c.Op == OpKeep || !under(c.Path, UnitDir) {
			continue
		}
		changed = true
		if c.Op == OpRemove && parentOf(c.Path) == UnitDir && slices.Contains(unitKinds, path.Ext(c.Path)) && !kept[c.Path] {
			stop = append(stop, path.Base(c.Path))
		}
	}
	if len(stop) > 0 {
		if err := sc(ctx, append([]string{"stop", "--no-block"}, stop...)...); err != nil {
			return err
		}
	}
	if changed {
		if err := sc(ctx, "daemon-reload"); err != nil {
			return err
		}
	}
	if len(enabled) == 0 {
		return nil
	}
	// When links or units changed (another release, a switch), running
	// units restart to use them; else those not running start.
	verb := "start"
	if anyChange {
		verb = "restart"
	}
	return sc(ctx, append([]string{verb, "--no-block"}, enabled...)...)
}

// open opens the path, a regular file, for reading without following a
// symlink.
func (p *parent) open() (*os.File, error) {
	m, err := p.lstat()
	if err != nil {
		return nil, err
	}
	if !m.IsRegular() {
		return nil, fmt.Errorf("%s: %s, not a regular file", p.full, p.describe(m))
	}
	return openFileAt(p.fd, p.name, p.full)
}

// DeployStatus is which bin of a deployed service is active.
type DeployStatus struct {
	Service string   `json:"service"`
	Path    string   `json:"path"`    // the active link, relative to the root
	Bin     string   `json:"bin"`     // the bin linked
	Default string   `json:"default"` // the bin the image links
	Bins    []string `json:"bins"`    // every bin the image carries
}

// checkGoals adds to s what the plan of the volume m asks for and the
// journal does not record, and the deploys' active bins.
func (s *Status) checkGoals(opts Options, j *Journal, m *manifest.Manifest, journaled, written map[string]string) error {
	r := &run{opts: opts, j: j}
	img := &ImageRef{Role: m.Role, UUID: m.UUID, Tree: m.TreeDigest, Volume: opts.Volume}
	goals, err := r.goals(m, filepath.Join(opts.Root, opts.Volume), img, nil)
	if err != nil {
		return err
	}
	for _, g := range goals {
		if g.Deploy != nil {
			d := g.Deploy
			s.Deploys = append(s.Deploys, DeployStatus{Service: d.Service, Path: g.Path, Bin: d.Bin, Default: d.Default, Bins: d.Bins})
		}
		if t, ok := journaled[g.Path]; ok && !g.File && t == g.Target {
			continue
		}
		if c, ok := written[g.Path]; ok && g.File && c == g.Content {
			continue
		}
		ls := LinkStatus{Path: g.Path, Target: g.Target, File: g.File, State: LinkInactive}
		text := g.Target
		if g.File {
			text = g.Content
		}
		st, found := checkPlaced(opts.Root, g.Path, g.File, text)
		if st == LinkOK {
			ls.State = LinkOK // made by hand, or the journal was lost
		} else {
			ls.Found = found
		}
		s.Links = append(s.Links, ls)
	}
	return nil
}

// WrittenMark begins every file activate writes, so that Recover can
// tell them without the journal.
const WrittenMark = "# Written by olimage activate from "

func writtenHeader(from string) string {
	return WrittenMark + from + "; olimage deactivate removes it.\n"
}

// writtenFile returns the content of root/rel if it is a file activate
// wrote.
func writtenFile(root, rel string) (string, bool) {
	f, err := os.Open(filepath.Join(root, rel))
	if err != nil {
		return "", false
	}
	defer f.Close()
	head := make([]byte, len(WrittenMark))
	if _, err := io.ReadFull(f, head); err != nil || string(head) != WrittenMark {
		return "", false
	}
	rest, err := io.ReadAll(io.LimitReader(f, maxUnitSize))
	if err != nil || len(head)+len(rest) > maxUnitSize {
		return "", false
	}
	return string(head) + string(rest), true
}

func written(root, rel string) bool {
	_, ok := writtenFile(root, rel)
	return ok
}

// deployDirLinks lists, as unlink steps, the symlinks into the volume
// (text starting with prefix) in dir, a directory of /opt that activate
// makes for deploys.
func deployDirLinks(root, dir, prefix string) ([]Change, error) {
	names, err := readDirNames(filepath.Join(root, dir))
	if err != nil {
		return nil, err
	}
	var out []Change
	for _, n := range names {
		t, err := os.Readlink(filepath.Join(root, dir, n))
		if err == nil && strings.HasPrefix(t, prefix) {
			out = append(out, Change{Op: OpUnlink, Path: dir + "/" + n, Target: t})
		}
	}
	return out, nil
}

// enablementLinks lists, as unlink steps, the links in the *.wants
// directories of root's units that name a unit file the steps remove: the
// enablement activate made with the image's text. A link to a unit the
// distribution ships cannot be told from one activate made, and stays.
func enablementLinks(root string, steps []Change) []Change {
	removed := map[string]bool{}
	for _, c := range steps {
		if c.Op == OpRemove && parentOf(c.Path) == UnitDir {
			removed[c.Path] = true
		}
	}
	var out []Change
	dirs, _ := readDirNames(filepath.Join(root, UnitDir))
	for _, d := range dirs {
		if !isWantsDir(UnitDir + "/" + d) {
			continue
		}
		names, _ := readDirNames(filepath.Join(root, UnitDir, d))
		for _, n := range names {
			p := UnitDir + "/" + d + "/" + n
			t, err := os.Readlink(filepath.Join(root, p))
			if err != nil {
				continue
			}
			abs := path.Clean("/" + path.Join(parentOf(p), t))
			if path.IsAbs(t) {
				abs = path.Clean(t)
			}
			if removed[abs[1:]] {
				out = append(out, Change{Op: OpUnlink, Path: p, Target: t})
			}
		}
	}
	return out
}
