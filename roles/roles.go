// Package roles loads a fleet: olimage.yaml, the role files under roles/,
// and the overlay declarations they hold. It validates strictly (every
// unknown key or bad value names its file and line) and resolves extends,
// but it does not read overlay sources; package overlays does that.
package roles

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/internetarchive/olimage/tree"
)

// FleetFile is the name of a fleet's top-level file.
const FleetFile = "olimage.yaml"

// Policy says what happens when an overlay supplies a path that a lower
// overlay already supplied.
type Policy string

// Conflict policies.
const (
	Override  Policy = "override"  // the upper entry wins
	Identical Policy = "identical" // fail unless both entries are equal
	Fail      Policy = "error"     // always fail
)

// Fleet is a loaded fleet.
type Fleet struct {
	Dir      string // the fleet directory as given
	Name     string
	Version  string
	Epoch    int64 // seconds; SOURCE_DATE_EPOCH already applied
	Owners   map[string]uint32
	Groups   map[string]uint32
	Defaults Defaults
	Rules    []Rule
	Sources  Sources
	// TopLevel are the names at the volume root, besides opt and etc,
	// that roles may put entries in (volume: {top_level: [...]}).
	// Activate links only opt/ and etc/; whatever else an image holds is
	// used at /1/NAME by something the fleet knows of.
	TopLevel []Glob
	// Policy is the fleet's content policy; each role's adds to it.
	Policy ContentPolicy
	// Roles are the roles whose files are free of errors.
	Roles map[string]*Role
	// Broken are the roles whose files have errors, each with all of
	// them; a broken role is not in Roles.
	Broken map[string]error
	// Problems are the errors of the fleet as a whole (olimage.yaml,
	// SOURCE_DATE_EPOCH, no roles): they concern every role.
	Problems []error

	broken  []string          // Broken's roles, in the order found
	extends map[string]string // each role's parent, as its file says
}

// Err joins every problem of the fleet, its own and its roles', in the
// order found; nil when there is none.
func (f *Fleet) Err() error { return f.errs(func(string) bool { return true }) }

// errs joins the fleet's problems and those of the broken roles in, in
// the order found.
func (f *Fleet) errs(in func(role string) bool) error {
	errs := append([]error(nil), f.Problems...)
	for _, name := range f.broken {
		if in(name) {
			errs = append(errs, f.Broken[name])
		}
	}
	return errors.Join(errs...)
}

// Sources are the fleet's limits on what overlay sources may be.
type Sources struct {
	// AllowOutside are globs of places outside the fleet directory that
	// sources may lie in (symlinks resolved): absolute, or relative to
	// the fleet directory.
	AllowOutside []Glob
	// MaxUnpacked is the most bytes an archive source may unpack to.
	MaxUnpacked int64
	// MaxRatio is the most bytes an archive may unpack to per byte of
	// it, once it has unpacked MinRatioCheck bytes.
	MaxRatio float64
}

// Defaults of Sources: far above what a data volume's archives unpack to
// (tens of gigabytes, compressed 3 to 10 times), far below what a
// decompression bomb does (a few megabytes to terabytes of zeros).
const (
	DefaultMaxUnpacked = 64 << 30
	DefaultMaxRatio    = 200
	// MinRatioCheck is where the ratio starts to count: a small archive
	// of zeros compresses a thousandfold and harms no one.
	MinRatioCheck = 64 << 20
)

// Defaults are the fleet-wide modes and image parameters.
type Defaults struct {
	DirMode  uint32
	FileMode uint32
	ExecMode uint32
	// Xattrs are the extended attributes directory sources keep, as
	// path.Match patterns of their names (security.capability, user.*).
	// None by default, so that a build host's SELinux labels and other
	// local attributes do not leak into images.
	Xattrs []string
	Image  Image
}

// Image holds the parameters of a role's image.
type Image struct {
	Label         string
	Size          int64  // bytes; 0 means auto
	Headroom      Amount // free space added to the content with auto size
	InodeHeadroom Amount // spare inodes
	Journal       bool
	// Verity appends the dm-verity hash tree to the image (build --verity).
	Verity bool
}

// Amount is a percentage or an absolute quantity.
type Amount struct {
	Percent float64
	Value   int64
}

func (a Amount) String() string {
	if a.Percent != 0 {
		return strconv.FormatFloat(a.Percent, 'f', -1, 64) + "%"
	}
	return strconv.FormatInt(a.Value, 10)
}

// Of applies a to base: base*Percent/100, or Value.
func (a Amount) Of(base int64) int64 {
	if a.Percent != 0 {
		return int64(float64(base) * a.Percent / 100)
	}
	return a.Value
}

// Role is one VM kind with its parents' overlays and rules folded in.
type Role struct {
	Name        string
	File        string
	Description string
	Extends     string
	Abstract    bool
	Image       Image
	Rules       []Rule        // the parent's first
	Overlays    []*Overlay    // the parent's first
	State       []State       // the parent's first
	Policy      ContentPolicy // the fleet's, then the parent's, then its own
	Secrets     []Secret      // the parent's first
}

// OwnedPath is a path on the VM's root disk that a role declares, with
// the owner, group and mode it must have.
type OwnedPath struct {
	Path  string // relative to the root: var/lib/postgresql/15/main
	Owner string
	Group string
	UID   uint32
	GID   uint32
	Mode  uint32
	Pos   Pos
}

// State is a directory the role's services write to on the VM's root
// disk: never in the image, created by activation when missing.
type State OwnedPath

// Overlay is one layer of a role.
type Overlay struct {
	Name      string
	Pos       Pos // where it is declared
	Kind      OverlayKind
	Source    string // filesystem path of a dir, tar or deploy source
	Files     []InlineEntry
	Deploy    *Deploy
	Remove    []Glob
	Conflict  Policy
	Conflicts []ConflictRule
	Rules     []Rule
}

// OverlayKind is where an overlay's entries come from. Its text is the
// word plans, manifests and `olimage roles` use.
type OverlayKind string

// Kinds of overlay.
const (
	DirOverlay    OverlayKind = "dir"    // a directory on the build host
	TarOverlay    OverlayKind = "tar"    // a tar archive, plain or compressed
	FilesOverlay  OverlayKind = "files"  // entries written in the YAML
	DeployOverlay OverlayKind = "deploy" // a source placed as a deploy bin
)

// InlineEntry is a file, directory or symlink written in YAML.
type InlineEntry struct {
	Pos     Pos
	Path    string
	Type    tree.Type // tree.File, tree.Dir or tree.Symlink
	Content string
	Target  string
	Mode    *uint32
	Owner   string
	Group   string
}

// Deploy places a source in the deploy history of a service.
type Deploy struct {
	Service  string
	Revision string
	Link     string
	Active   bool
	History  *History // bins carried over from a previous release, or nil
}

// History copies the newest Keep bins of a deploy's service from a
// previous release's image, so the new image can switch back to them.
type History struct {
	From string // filesystem path of the previous image
	Keep int
	Pos  Pos // where history: is written
}

// Glob is a path pattern with where it was written.
type Glob struct {
	Pattern string
	Pos     Pos
}

// ConflictRule sets the conflict policy for paths matching a glob.
type ConflictRule struct {
	Glob
	Policy Policy
}

// Rule sets metadata for paths matching a glob.
type Rule struct {
	Glob
	Owner  string
	Group  string
	UID    *uint32
	GID    *uint32
	Mode   *uint32
	Setuid bool
	// Capability allows the security.capability attribute (file
	// capabilities), which grants privileges as a setuid bit does.
	Capability bool
}

type rawFleet struct {
	Fleet    string            `yaml:"fleet"`
	Version  string            `yaml:"version"`
	Epoch    string            `yaml:"epoch"`
	Owners   map[string]uint32 `yaml:"owners"`
	Groups   map[string]uint32 `yaml:"groups"`
	Defaults struct {
		DirMode  string   `yaml:"dir_mode"`
		FileMode string   `yaml:"file_mode"`
		ExecMode string   `yaml:"exec_mode"`
		Xattrs   []string `yaml:"xattrs"`
		Image    rawImage `yaml:"image"`
	} `yaml:"defaults"`
	Rules   []rawRule `yaml:"rules"`
	Sources struct {
		AllowOutside []string `yaml:"allow_outside"`
		MaxUnpacked  string   `yaml:"max_unpacked"`
		MaxRatio     *float64 `yaml:"max_ratio"`
	} `yaml:"sources"`
	Volume struct {
		TopLevel []string `yaml:"top_level"`
	} `yaml:"volume"`
	Policy rawPolicy `yaml:"policy"`
}

type rawImage struct {
	Label         string `yaml:"label"`
	Size          string `yaml:"size"`
	Headroom      string `yaml:"headroom"`
	InodeHeadroom string `yaml:"inode_headroom"`
	Journal       *bool  `yaml:"journal"`
	Verity        *bool  `yaml:"verity"`
}

type rawRule struct {
	Path       string `yaml:"path"`
	Owner      string `yaml:"owner"`
	Group      string `yaml:"group"`
	Mode       string `yaml:"mode"`
	Setuid     bool   `yaml:"setuid"`
	Capability bool   `yaml:"capability"`
}

type rawRole struct {
	Description string       `yaml:"description"`
	Extends     string       `yaml:"extends"`
	Abstract    bool         `yaml:"abstract"`
	Image       rawImage     `yaml:"image"`
	Rules       []rawRule    `yaml:"rules"`
	Overlays    []rawOverlay `yaml:"overlays"`
	State       []rawOwned   `yaml:"state"`
	Policy      rawPolicy    `yaml:"policy"`
	Secrets     []rawOwned   `yaml:"secrets"`
}

// rawOwned is a path on the VM's root disk declared with its owner and
// mode: a state directory or a secret.
type rawOwned struct {
	Path  string `yaml:"path"`
	Owner string `yaml:"owner"`
	Group string `yaml:"group"`
	Mode  string `yaml:"mode"`
}

type rawOverlay struct {
	Name  string `yaml:"name"`
	Dir   string `yaml:"dir"`
	Tar   string `yaml:"tar"`
	Files []struct {
		Path    string  `yaml:"path"`
		Content *string `yaml:"content"`
		Dir     bool    `yaml:"dir"`
		Symlink string  `yaml:"symlink"`
		Mode    string  `yaml:"mode"`
		Owner   string  `yaml:"owner"`
		Group   string  `yaml:"group"`
	} `yaml:"files"`
	Deploy *struct {
		Service  string `yaml:"service"`
		Source   string `yaml:"source"`
		Revision string `yaml:"revision"`
		Link     string `yaml:"link"`
		Active   *bool  `yaml:"active"`
		History  *struct {
			From string `yaml:"from"`
			Keep *int   `yaml:"keep"`
		} `yaml:"history"`
	} `yaml:"deploy"`
	Remove    []string `yaml:"remove"`
	Conflict  string   `yaml:"conflict"`
	Conflicts []struct {
		Path   string `yaml:"path"`
		Policy string `yaml:"policy"`
	} `yaml:"conflicts"`
	Rules []rawRule `yaml:"rules"`
}

// Load reads the fleet in dir. It fails only when there is no fleet to
// speak of: no olimage.yaml, or one that is not YAML of the fleet's keys.
// Every other problem is kept in the fleet, so that a user sees them all at
// once and each role stands or falls on its own: those of the fleet as a
// whole in Problems, those of a role's file in Broken; Err joins them all,
// and Role refuses a role either concerns.
func Load(dir string) (*Fleet, error) { return LoadContext(context.Background(), dir) }

// LoadContext is Load, stopping with ctx's error once ctx is done.
func LoadContext(ctx context.Context, dir string) (*Fleet, error) {
	file := filepath.Join(dir, FleetFile)
	var raw rawFleet
	root, err := decodeFile(file, &raw)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no fleet here (want %s and roles/*.yaml): %w", dir, FleetFile, err)
		}
		return nil, err
	}
	f := &Fleet{Dir: dir, Name: raw.Fleet, Version: raw.Version, Owners: raw.Owners, Groups: raw.Groups, Roles: map[string]*Role{}, Broken: map[string]error{}, extends: map[string]string{}}
	if f.Owners == nil {
		f.Owners = map[string]uint32{}
	}
	if f.Groups == nil {
		f.Groups = map[string]uint32{}
	}
	// root is always 0, so fleets need not spell it out.
	if _, ok := f.Owners["root"]; !ok {
		f.Owners["root"] = 0
	}
	if _, ok := f.Groups["root"]; !ok {
		f.Groups["root"] = 0
	}
	var errs []error
	at := func(n *yaml.Node, key string) Pos { return Pos{file, keyLine(n, key)} }
	if f.Name == "" {
		errs = append(errs, errorf(Pos{file, root.Line}, "missing key \"fleet\" (the fleet's name)"))
	}
	f.Epoch, err = parseEpoch(raw.Epoch)
	if err != nil {
		errs = append(errs, errorf(at(root, "epoch"), "epoch: %v", err))
	}
	if s, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok && s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970-01-01 UTC", s))
		}
		f.Epoch = n
	}
	defs := field(root, "defaults")
	modes := []struct {
		key string
		raw string
		def uint32
		out *uint32
	}{
		{"dir_mode", raw.Defaults.DirMode, 0o755, &f.Defaults.DirMode},
		{"file_mode", raw.Defaults.FileMode, 0o644, &f.Defaults.FileMode},
		{"exec_mode", raw.Defaults.ExecMode, 0o755, &f.Defaults.ExecMode},
	}
	for _, m := range modes {
		*m.out = m.def
		if m.raw != "" {
			v, err := parseMode(m.raw)
			if err != nil {
				errs = append(errs, errorf(at(defs, m.key), "%s: %v", m.key, err))
			}
			*m.out = v
		}
	}
	for i, x := range raw.Defaults.Xattrs {
		if _, err := path.Match(x, ""); err != nil || x == "" {
			errs = append(errs, errorf(Pos{file, lineAt(itemLines(defs, "xattrs"), i)}, "xattrs: %q is not a name or pattern such as security.capability or user.*", x))
		}
	}
	f.Defaults.Xattrs = raw.Defaults.Xattrs
	f.Defaults.Image = Image{Headroom: Amount{Percent: 20}, InodeHeadroom: Amount{Percent: 20}, Journal: true}
	if err := mergeImage(&f.Defaults.Image, raw.Defaults.Image, file, field(defs, "image")); err != nil {
		errs = append(errs, err)
	}
	f.Rules, err = f.rules(raw.Rules, file, root)
	if err != nil {
		errs = append(errs, err)
	}
	tl := itemLines(field(root, "volume"), "top_level")
	for i, name := range raw.Volume.TopLevel {
		pos := Pos{file, lineAt(tl, i)}
		switch {
		case name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == "..":
			errs = append(errs, errorf(pos, "top_level: %q: want a name at the volume root, such as srv", name))
		case name == "opt" || name == "etc":
			errs = append(errs, errorf(pos, "top_level: %q is always allowed; list only other names", name))
		}
		f.TopLevel = append(f.TopLevel, Glob{name, pos})
	}
	srcs := field(root, "sources")
	al := itemLines(srcs, "allow_outside")
	for i, g := range raw.Sources.AllowOutside {
		pos := Pos{file, lineAt(al, i)}
		if err := checkSourceGlob(g); err != nil {
			errs = append(errs, errorf(pos, "allow_outside: %v", err))
		}
		f.Sources.AllowOutside = append(f.Sources.AllowOutside, Glob{g, pos})
	}
	f.Sources.MaxUnpacked, f.Sources.MaxRatio = DefaultMaxUnpacked, DefaultMaxRatio
	if s := raw.Sources.MaxUnpacked; s != "" {
		v, err := ParseSize(s)
		if err == nil && v == 0 {
			err = fmt.Errorf("%q: want more than 0", s)
		}
		if err != nil {
			errs = append(errs, errorf(at(srcs, "max_unpacked"), "max_unpacked: %v", err))
		}
		f.Sources.MaxUnpacked = v
	}
	if v := raw.Sources.MaxRatio; v != nil {
		if *v < 1 {
			errs = append(errs, errorf(at(srcs, "max_ratio"), "max_ratio: %v: want 1 or more (unpacked bytes per archive byte)", *v))
		}
		f.Sources.MaxRatio = *v
	}

	if f.Policy, err = policy(raw.Policy, file, root, ContentPolicy{}); err != nil {
		errs = append(errs, err)
	}

	files, _ := filepath.Glob(filepath.Join(dir, "roles", "*.yaml"))
	if len(files) == 0 {
		errs = append(errs, fmt.Errorf("%s: no roles (want roles/*.yaml)", filepath.Join(dir, "roles")))
	}
	f.Problems = errs
	broken := func(name string, err error) {
		f.Broken[name] = err
		f.broken = append(f.broken, name)
	}
	raws := map[string]*rawRole{}
	rawRoots := map[string]*yaml.Node{}
	for _, rf := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(filepath.Base(rf), ".yaml")
		var rr rawRole
		n, err := decodeFile(rf, &rr)
		if err != nil {
			broken(name, err)
			continue
		}
		raws[name], rawRoots[name] = &rr, n
		f.extends[name] = rr.Extends
	}
	names := make([]string, 0, len(raws))
	for name := range raws {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := f.resolve(name, raws, rawRoots, nil); err != nil {
			broken(name, err)
		}
	}
	return f, nil
}

func (f *Fleet) roleFile(name string) string {
	return filepath.Join(f.Dir, "roles", name+".yaml")
}

// cycleError is an extends cycle, reported as is by every role on it.
type cycleError struct{ error }

func (c cycleError) Unwrap() error { return c.error }

// resolve builds role name from its raw form after its parent, detecting
// cycles through stack.
func (f *Fleet) resolve(name string, raws map[string]*rawRole, roots map[string]*yaml.Node, stack []string) (*Role, error) {
	if r, ok := f.Roles[name]; ok {
		return r, nil
	}
	rr, root := raws[name], roots[name]
	file := f.roleFile(name)
	r := &Role{Name: name, File: file, Description: rr.Description, Extends: rr.Extends, Abstract: rr.Abstract, Image: f.Defaults.Image, Policy: f.Policy}
	r.Image.Label = name
	var errs []error
	if rr.Extends != "" {
		pos := Pos{file, keyLine(root, "extends")}
		for i, s := range stack {
			if s == rr.Extends {
				cycle := append(append([]string{}, stack[i:]...), name, rr.Extends)
				return nil, cycleError{errorf(pos, "extends cycle: %s", strings.Join(cycle, " -> "))}
			}
		}
		if _, ok := raws[rr.Extends]; !ok {
			if f.Broken[rr.Extends] != nil {
				return nil, errorf(pos, "extends %q, which has errors", rr.Extends)
			}
			return nil, errorf(pos, "extends unknown role %q (no %s)", rr.Extends, f.roleFile(rr.Extends))
		}
		parent, err := f.resolve(rr.Extends, raws, roots, append(stack, name))
		if err != nil {
			var c cycleError
			if errors.As(err, &c) {
				return nil, err
			}
			// The parent's own errors are reported when it is resolved.
			return nil, errorf(pos, "extends %q, which has errors", rr.Extends)
		}
		r.Image = parent.Image
		r.Image.Label = name
		r.Rules = append(r.Rules, parent.Rules...)
		r.Overlays = append(r.Overlays, parent.Overlays...)
		r.State = append(r.State, parent.State...)
		r.Policy = parent.Policy
		r.Secrets = append(r.Secrets, parent.Secrets...)
	}
	secrets, err := f.secrets(rr.Secrets, file, root, r.Secrets)
	if err != nil {
		errs = append(errs, err)
	}
	r.Secrets = append(r.Secrets, secrets...)
	pol, err := policy(rr.Policy, file, root, r.Policy)
	if err != nil {
		errs = append(errs, err)
	}
	r.Policy = pol
	state, err := f.state(rr.State, file, root, r.State)
	if err != nil {
		errs = append(errs, err)
	}
	r.State = append(r.State, state...)
	if err := mergeImage(&r.Image, rr.Image, file, field(root, "image")); err != nil {
		errs = append(errs, err)
	}
	rules, err := f.rules(rr.Rules, file, root)
	if err != nil {
		errs = append(errs, err)
	}
	r.Rules = append(r.Rules, rules...)
	seen := map[string]Pos{}
	for _, o := range r.Overlays {
		seen[o.Name] = o.Pos
	}
	lines := itemLines(root, "overlays")
	ovNodes := field(root, "overlays")
	for i, ro := range rr.Overlays {
		o, err := f.overlay(ro, Pos{file, lineAt(lines, i)}, ovNodes.Content[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if prev, dup := seen[o.Name]; dup {
			errs = append(errs, errorf(o.Pos, "overlay %q already declared at %s", o.Name, prev))
			continue
		}
		seen[o.Name] = o.Pos
		r.Overlays = append(r.Overlays, o)
	}
	if len(r.Overlays) == 0 && !r.Abstract && len(errs) == 0 {
		errs = append(errs, errorf(Pos{File: file}, "role has no overlays"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	f.Roles[name] = r
	return r, nil
}

func (f *Fleet) overlay(ro rawOverlay, pos Pos, n *yaml.Node) (*Overlay, error) {
	file := pos.File
	o := &Overlay{Name: ro.Name, Pos: pos, Conflict: Override}
	var errs []error
	if o.Name == "" {
		errs = append(errs, errorf(pos, "overlay has no name"))
	} else if strings.ContainsAny(o.Name, "/ \t") || checkControl(o.Name) != nil {
		errs = append(errs, errorf(pos, "overlay name %q: want no slashes, spaces or control characters", o.Name))
	}
	var kinds []string
	if ro.Dir != "" {
		kinds = append(kinds, "dir")
		o.Kind, o.Source = DirOverlay, f.sourcePath(ro.Dir)
	}
	if ro.Tar != "" {
		kinds = append(kinds, "tar")
		o.Kind, o.Source = TarOverlay, f.sourcePath(ro.Tar)
	}
	if ro.Files != nil {
		kinds = append(kinds, "files")
		o.Kind = FilesOverlay
		var ferrs []error
		o.Files, ferrs = f.inlineFiles(ro, file, n)
		errs = append(errs, ferrs...)
	}
	if ro.Deploy != nil {
		kinds = append(kinds, "deploy")
		var derrs []error
		o.Source, o.Deploy, derrs = f.deploy(ro, file, n)
		o.Kind = DeployOverlay
		errs = append(errs, derrs...)
	}
	switch len(kinds) {
	case 1:
	case 0:
		errs = append(errs, errorf(pos, "overlay %q has no source (want one of dir, tar, files, deploy)", o.Name))
	default:
		errs = append(errs, errorf(pos, "overlay %q has %d sources (%s); want one", o.Name, len(kinds), strings.Join(kinds, ", ")))
	}
	errs = append(errs, o.conflictRules(ro, file, n)...)
	rules, err := f.rules(ro.Rules, file, n)
	if err != nil {
		errs = append(errs, err)
	}
	o.Rules = rules
	return o, errors.Join(errs...)
}

// inlineFiles reads an overlay's files: list, the entries written in the
// YAML.
func (f *Fleet) inlineFiles(ro rawOverlay, file string, n *yaml.Node) (out []InlineEntry, errs []error) {
	lines := itemLines(n, "files")
	for i, rf := range ro.Files {
		ep := Pos{file, lineAt(lines, i)}
		e := InlineEntry{Pos: ep, Owner: rf.Owner, Group: rf.Group, Target: rf.Symlink}
		var err error
		e.Path, err = cleanPath(rf.Path)
		if err != nil {
			errs = append(errs, errorf(ep, "path: %v", err))
		}
		var types []string
		if rf.Content != nil {
			types = append(types, "content")
			e.Type, e.Content = tree.File, *rf.Content
		}
		if rf.Dir {
			types = append(types, "dir")
			e.Type = tree.Dir
		}
		if rf.Symlink != "" {
			types = append(types, "symlink")
			e.Type = tree.Symlink
			if err := checkControl(rf.Symlink); err != nil {
				errs = append(errs, errorf(ep, "symlink: %v", err))
			} else if len(rf.Symlink) > MaxPath {
				errs = append(errs, errorf(ep, "symlink: target is %d bytes; olimage allows %d (PATH_MAX)", len(rf.Symlink), MaxPath))
			}
		}
		if len(types) != 1 {
			errs = append(errs, errorf(ep, "%s: want exactly one of content, dir: true, symlink (got %d)", rf.Path, len(types)))
		}
		if rf.Mode != "" {
			m, err := parseMode(rf.Mode)
			if err != nil {
				errs = append(errs, errorf(ep, "%s: mode: %v", rf.Path, err))
			}
			e.Mode = &m
		}
		if err := f.checkNames(ep, rf.Owner, rf.Group); err != nil {
			errs = append(errs, err)
		}
		out = append(out, e)
	}
	return out, errs
}

// deploy reads an overlay's deploy: block, and returns its source.
func (f *Fleet) deploy(ro rawOverlay, file string, n *yaml.Node) (source string, dep *Deploy, errs []error) {
	d := ro.Deploy
	dp := Pos{file, keyLine(n, "deploy")}
	dep = &Deploy{Service: d.Service, Revision: d.Revision, Link: d.Link, Active: d.Active == nil || *d.Active}
	if d.Service == "" || strings.ContainsAny(d.Service, "/ ") || checkControl(d.Service) != nil || d.Service == "." || d.Service == ".." {
		errs = append(errs, errorf(dp, "deploy: service %q: want a plain name such as openlibrary", d.Service))
	}
	if d.Source == "" {
		errs = append(errs, errorf(dp, "deploy: missing source"))
	}
	if d.Revision != "" && (strings.ContainsAny(d.Revision, "/ ") || checkControl(d.Revision) != nil || d.Revision == "." || d.Revision == "..") {
		errs = append(errs, errorf(dp, "deploy: revision %q: want a plain name", d.Revision))
	}
	if dep.Link == "" {
		dep.Link = path.Join("opt/openlibrary", d.Service)
	} else if l, err := cleanPath(d.Link); err != nil {
		errs = append(errs, errorf(dp, "deploy: link: %v", err))
	} else {
		dep.Link = l
	}
	if h := d.History; h != nil {
		hp := Pos{file, keyLine(field(n, "deploy"), "history")}
		dep.History = &History{From: f.sourcePath(h.From), Pos: hp}
		if h.From == "" {
			errs = append(errs, errorf(hp, "deploy: history: missing from (the previous release's image)"))
		}
		if h.Keep == nil || *h.Keep < 1 {
			errs = append(errs, errorf(hp, "deploy: history: keep: want 1 or more bins to carry over"))
		} else {
			dep.History.Keep = *h.Keep
		}
	}
	return f.sourcePath(d.Source), dep, errs
}

// conflictRules reads an overlay's remove:, conflict: and conflicts: keys.
func (o *Overlay) conflictRules(ro rawOverlay, file string, n *yaml.Node) (errs []error) {
	rl := itemLines(n, "remove")
	for i, g := range ro.Remove {
		gp := Pos{file, lineAt(rl, i)}
		if err := checkGlob(g); err != nil {
			errs = append(errs, errorf(gp, "remove: %v", err))
		}
		o.Remove = append(o.Remove, Glob{g, gp})
	}
	if ro.Conflict != "" {
		p, err := parsePolicy(ro.Conflict)
		if err != nil {
			errs = append(errs, errorf(Pos{file, keyLine(n, "conflict")}, "conflict: %v", err))
		}
		o.Conflict = p
	}
	cl := itemLines(n, "conflicts")
	for i, c := range ro.Conflicts {
		cp := Pos{file, lineAt(cl, i)}
		p, err := parsePolicy(c.Policy)
		if err != nil {
			errs = append(errs, errorf(cp, "policy: %v", err))
		}
		if err := checkGlob(c.Path); err != nil {
			errs = append(errs, errorf(cp, "path: %v", err))
		}
		o.Conflicts = append(o.Conflicts, ConflictRule{Glob{c.Path, cp}, p})
	}
	return errs
}

func (f *Fleet) rules(raw []rawRule, file string, parent *yaml.Node) ([]Rule, error) {
	var out []Rule
	var errs []error
	lines := itemLines(parent, "rules")
	for i, rr := range raw {
		pos := Pos{file, lineAt(lines, i)}
		r := Rule{Glob: Glob{rr.Path, pos}, Owner: rr.Owner, Group: rr.Group, Setuid: rr.Setuid, Capability: rr.Capability}
		if err := checkGlob(rr.Path); err != nil {
			errs = append(errs, errorf(pos, "rule path: %v", err))
		}
		if rr.Owner != "" {
			if id, ok := f.Owners[rr.Owner]; ok {
				r.UID = &id
			}
		}
		if rr.Group != "" {
			if id, ok := f.Groups[rr.Group]; ok {
				r.GID = &id
			}
		}
		if err := f.checkNames(pos, rr.Owner, rr.Group); err != nil {
			errs = append(errs, err)
		}
		if rr.Mode != "" {
			m, err := parseMode(rr.Mode)
			if err != nil {
				errs = append(errs, errorf(pos, "mode: %v", err))
			}
			r.Mode = &m
		}
		if rr.Owner == "" && rr.Group == "" && rr.Mode == "" && !rr.Setuid && !rr.Capability {
			errs = append(errs, errorf(pos, "rule for %q sets nothing (want owner, group, mode, setuid or capability)", rr.Path))
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// ownedKind is one kind of declared path: its key in the role, what
// messages call it ("state path", "secret") and its mode ("state",
// "secret"), its mode unless the role gives one, and the check of a path
// as written, which returns it relative to the root.
type ownedKind struct {
	key, noun, what string
	mode            uint32
	check           func(p string) (string, error)
}

// declared reads the paths a role declares under one key (state:,
// secrets:), after those it inherits: each checked, declared once in the
// role and its parents, with its owner, group and mode resolved.
func declared[T State | Secret](f *Fleet, k ownedKind, raw []rawOwned, file string, parent *yaml.Node, inherited []T) ([]T, error) {
	var out []T
	var errs []error
	seen := map[string]Pos{}
	for _, s := range inherited {
		seen[OwnedPath(s).Path] = OwnedPath(s).Pos
	}
	lines := itemLines(parent, k.key)
	for i, rs := range raw {
		pos := Pos{file, lineAt(lines, i)}
		rel, err := k.check(rs.Path)
		if err != nil {
			errs = append(errs, errorf(pos, "%v", err))
			continue
		}
		if prev, dup := seen[rel]; dup {
			errs = append(errs, errorf(pos, "%s /%s already declared at %s", k.noun, rel, prev))
			continue
		}
		seen[rel] = pos
		s := OwnedPath{Path: rel, Pos: pos}
		if s.Owner, s.Group, s.UID, s.GID, s.Mode, err = f.ownership(pos, k.what, rs.Owner, rs.Group, rs.Mode, k.mode); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, T(s))
	}
	return out, errors.Join(errs...)
}

// state reads a role's state: paths, after those it inherits.
func (f *Fleet) state(raw []rawOwned, file string, parent *yaml.Node, inherited []State) ([]State, error) {
	return declared(f, ownedKind{key: "state", noun: "state path", what: "state", mode: f.Defaults.DirMode, check: func(p string) (string, error) {
		if !strings.HasPrefix(p, "/") {
			return "", fmt.Errorf("state path %q: want an absolute path such as /var/lib/postgresql/15/main", p)
		}
		return p[1:], tree.CheckStatePath(p[1:])
	}}, raw, file, parent, inherited)
}

// ownership resolves the owner, group and mode of a path olimage makes
// or checks on the VM (what: "state", "secret"): the owner defaults to
// root, the group to the owner's if there is one, else root, the mode to
// def.
func (f *Fleet) ownership(pos Pos, what, owner, group, mode string, def uint32) (string, string, uint32, uint32, uint32, error) {
	if owner == "" {
		owner = "root"
	}
	if group == "" {
		group = owner
		if _, ok := f.Groups[group]; !ok {
			group = "root"
		}
	}
	if err := f.checkNames(pos, owner, group); err != nil {
		return "", "", 0, 0, 0, err
	}
	m := def
	if mode != "" {
		var err error
		if m, err = parseMode(mode); err != nil {
			return "", "", 0, 0, 0, errorf(pos, "%s mode: %v", what, err)
		}
	}
	return owner, group, f.Owners[owner], f.Groups[group], m, nil
}

func (f *Fleet) checkNames(pos Pos, owner, group string) error {
	var errs []error
	if _, ok := f.Owners[owner]; owner != "" && !ok {
		errs = append(errs, errorf(pos, "owner %q is not in %s owners", owner, FleetFile))
	}
	if _, ok := f.Groups[group]; group != "" && !ok {
		errs = append(errs, errorf(pos, "group %q is not in %s groups", group, FleetFile))
	}
	return errors.Join(errs...)
}

// sourcePath resolves a source named in a fleet file against the fleet
// directory.
func (f *Fleet) sourcePath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(f.Dir, p)
}

func mergeImage(img *Image, raw rawImage, file string, n *yaml.Node) error {
	var errs []error
	at := func(key string) Pos { return Pos{file, keyLine(n, key)} }
	if raw.Label != "" {
		if len(raw.Label) > 16 {
			errs = append(errs, errorf(at("label"), "label %q is %d bytes; ext4 allows 16", raw.Label, len(raw.Label)))
		}
		img.Label = raw.Label
	}
	if raw.Size != "" {
		if raw.Size == "auto" {
			img.Size = 0
		} else if v, err := ParseSize(raw.Size); err != nil {
			errs = append(errs, errorf(at("size"), "size: %v", err))
		} else {
			img.Size = v
		}
	}
	amount := func(key, s string, out *Amount) {
		if s == "" {
			return
		}
		a, err := parseAmount(s)
		if err != nil {
			errs = append(errs, errorf(at(key), "%s: %v", key, err))
		}
		*out = a
	}
	amount("headroom", raw.Headroom, &img.Headroom)
	amount("inode_headroom", raw.InodeHeadroom, &img.InodeHeadroom)
	if raw.Journal != nil {
		img.Journal = *raw.Journal
	}
	if raw.Verity != nil {
		img.Verity = *raw.Verity
	}
	return errors.Join(errs...)
}

// TopLevelAllowed reports whether the fleet declares name, at the volume
// root, in volume: {top_level: [...]}; the names may be globs.
func (f *Fleet) TopLevelAllowed(name string) bool {
	for _, g := range f.TopLevel {
		if ok, _ := path.Match(g.Pattern, name); ok {
			return true
		}
	}
	return false
}

// Rel names source path p relative to the fleet directory, with
// slashes, as manifests record it: the same on every checkout. A path
// that does not lie inside the fleet is returned as it is.
func (f *Fleet) Rel(p string) string {
	if rel, err := filepath.Rel(f.Dir, p); err == nil && p != "" {
		return filepath.ToSlash(rel)
	}
	return p
}

// Where names p relative to the fleet directory, as provenance recorded
// in trees must be the same wherever the fleet is checked out.
func (f *Fleet) Where(p Pos) string {
	if r, err := filepath.Rel(f.Dir, p.File); err == nil && !strings.HasPrefix(r, "..") {
		p.File = filepath.ToSlash(r)
	}
	return p.String()
}

// Role returns the named role, free of errors: an error if the fleet has
// no such role (ErrNoRole, listing the ones there are), if its file has
// errors (ErrBroken, then the fleet's problems and those of the role and
// of the broken roles it extends), or if the fleet as a whole has problems
// (them). Other roles' errors do not matter.
func (f *Fleet) Role(name string) (*Role, error) {
	if f.Broken[name] != nil {
		chain := map[string]bool{}
		for n := name; f.Broken[n] != nil && !chain[n]; n = f.extends[n] {
			chain[n] = true
		}
		return nil, errors.Join(fmt.Errorf("role %q %w (run olimage validate)", name, ErrBroken), f.errs(func(n string) bool { return chain[n] }))
	}
	r, ok := f.Roles[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q (have: %s)", ErrNoRole, name, strings.Join(f.RoleNames(true), ", "))
	}
	if len(f.Problems) > 0 {
		return nil, errors.Join(f.Problems...)
	}
	return r, nil
}

// ErrBroken is returned for a role whose file has errors: Fleet.Broken
// holds them.
var ErrBroken = errors.New("has errors")

// ErrNoRole is returned for a role the fleet does not declare.
var ErrNoRole = errors.New("no such role")

// RoleNames lists the roles in name order; abstract ones only if asked.
func (f *Fleet) RoleNames(abstract bool) []string {
	var names []string
	for name, r := range f.Roles {
		if abstract || !r.Abstract {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func parseMode(s string) (uint32, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, fmt.Errorf("%q is not an octal mode such as \"0644\"", s)
	}
	return uint32(v), nil
}

func parsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case Override, Identical, Fail:
		return p, nil
	}
	return "", fmt.Errorf("%q: want override, identical or error", s)
}

func parseEpoch(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("%d is before 1970", n)
		}
		return n, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Unix() < 0 {
				return 0, fmt.Errorf("%s is before 1970", s)
			}
			return t.Unix(), nil
		}
	}
	return 0, fmt.Errorf("%q: want RFC 3339 (2024-01-01T00:00:00Z) or Unix seconds", s)
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1},
}

// ParseSize parses a byte count such as 4096, 512MiB or 2G (binary).
func ParseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || v*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("%q is not a size such as 2GiB, 512MiB or 4096", s)
	}
	return int64(v * float64(mult)), nil
}

func parseAmount(s string) (Amount, error) {
	if p, ok := strings.CutSuffix(strings.TrimSpace(s), "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 || v > 10000 {
			return Amount{}, fmt.Errorf("%q is not a percentage such as 20%%", s)
		}
		return Amount{Percent: v}, nil
	}
	v, err := ParseSize(s)
	if err != nil {
		return Amount{}, fmt.Errorf("%q: want a percentage such as 20%% or an amount such as 256MiB", s)
	}
	return Amount{Value: v}, nil
}

// cleanPath checks that p names a path inside the volume and returns it
// in canonical form.
func cleanPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	if len(p) > MaxPath {
		return "", fmt.Errorf("path is %d bytes; olimage allows %d (PATH_MAX)", len(p), MaxPath)
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q is absolute; paths are relative to the volume root (opt/..., etc/...)", p)
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("%q contains a NUL byte", p)
	}
	if err := checkControl(p); err != nil {
		return "", err
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("%q leaves the volume root", p)
		}
		if len(c) > 255 {
			return "", fmt.Errorf("a name in %.60q... is %d bytes; ext4 allows 255", p, len(c))
		}
	}
	c := path.Clean(p)
	if c == "." {
		return "", fmt.Errorf("%q names the volume root", p)
	}
	return c, nil
}

// MaxPath is the longest path or symlink target olimage takes, Linux's
// PATH_MAX.
const MaxPath = 4096

// checkControl refuses control characters in a name: a newline would let
// one path pass for two lines in every listing that prints it.
func checkControl(p string) error {
	if i := strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
		return fmt.Errorf("%q contains the control character %q", p, p[i])
	}
	return nil
}

// checkSourceGlob checks a glob of host paths: absolute or relative to
// the fleet directory, unlike volume globs.
func checkSourceGlob(g string) error {
	if g == "" {
		return errors.New("empty glob")
	}
	return checkGlob(strings.TrimPrefix(g, "/"))
}

func checkGlob(g string) error {
	if g == "" {
		return errors.New("empty glob")
	}
	if strings.HasPrefix(g, "/") {
		return fmt.Errorf("%q is absolute; globs are relative to the volume root", g)
	}
	for _, seg := range strings.Split(g, "/") {
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("%q: %v", g, err)
		}
	}
	return nil
}
