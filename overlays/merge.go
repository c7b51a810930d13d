package overlays

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/internetarchive/olimage/glob"
	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
)

// ErrConflict marks a path that two overlays supply in a way the conflict
// policy or the type rules forbid.
var ErrConflict = errors.New("conflict")

// checkEvery is how many entries a loop handles between looks at its
// context: often enough to stop within a fraction of a second, seldom
// enough to cost nothing.
const checkEvery = 1024

// ErrReserved marks an entry at a path the volume keeps for itself.
var ErrReserved = errors.New("reserved path")

// reserved are the top-level names every volume has that no overlay
// supplies, with what they are for.
var reserved = map[string]string{
	tree.OlimageDir: "reserved for olimage's manifest",
	"lost+found":    "reserved for e2fsck (every ext4 volume has it)",
}

// Result is a merged role. Close it to release the spool that tar members
// are read from.
type Result struct {
	Role    *roles.Role
	Epoch   int64
	Tree    *tree.Tree
	Inputs  []tree.Input
	Deploys []tree.Deploy     // each deployed service's bins, newest first
	Removed map[string]string // removed path -> what removed it
	r       *reader
}

// Close releases the spool.
func (res *Result) Close() error { return res.r.close() }

// HistoryOf names the previous release's image that p was copied from
// as part of a deploy history, or "".
func (res *Result) HistoryOf(p string) string {
	for _, d := range res.Deploys {
		dir := path.Join(tree.DeploysDir, d.Service) + "/"
		bin, _, _ := strings.Cut(strings.TrimPrefix(p, dir), "/")
		if !strings.HasPrefix(p, dir) {
			continue
		}
		for _, b := range d.Bins {
			if b.Bin == bin {
				return b.From
			}
		}
	}
	return ""
}

// Removal says what removed p, or of one of its parents, or "".
func (res *Result) Removal(p string) string {
	for ; p != ""; p = tree.Parent(p) {
		if why, ok := res.Removed[p]; ok {
			return why
		}
	}
	return ""
}

type node struct {
	e    *tree.Entry
	kids map[string]*node
}

type merger struct {
	ctx     context.Context
	fleet   *roles.Fleet
	role    *roles.Role
	root    *node
	removed map[string]string
	// lastDir and lastNode are the parent directory of the entry add
	// placed last, and its node: a layer's entries come in tree order, so
	// the next one most often has the same parent, which add then need
	// not look up component by component. Only add changes the tree
	// while they are set, and it never removes a directory's node.
	lastDir  string
	lastNode *node
}

// within prefixes err, or each error err joins, with where: every line
// of a merge error names the role file and the role.
func within(where string, err error) error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = within(where, e)
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s: %w", where, err)
}

// SourceError is an overlay's source that could not be read, declared at
// Pos: what to fix is there or at Source, not in what the command named.
type SourceError struct {
	Pos    roles.Pos
	Source string // "" for inline files
	Err    error  // says where, then why
}

func (e *SourceError) Error() string { return e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// Options tune how Merge reads sources; the zero value is the default.
type Options struct {
	// TmpDir is where members of compressed archives are spooled; ""
	// is $TMPDIR (os.TempDir).
	TmpDir string
	// Shared, if set, reads each dir and tar source once for every role
	// merged with it; TmpDir is then the Shared's.
	Shared *Shared
	// History reads earlier releases' images for deploy histories; a
	// role that has one fails to merge without it.
	History History
}

// Merge reads every overlay of role and merges them in order. It stops
// with ctx's error once ctx is done: every loop over sources, entries or
// bytes checks it.
func Merge(ctx context.Context, f *roles.Fleet, role *roles.Role) (*Result, error) {
	return MergeWith(ctx, f, role, Options{})
}

// MergeWith is Merge with options.
func MergeWith(ctx context.Context, f *roles.Fleet, role *roles.Role, opts Options) (*Result, error) {
	rd := &reader{fleet: f, ctx: ctx, tmpdir: opts.TmpDir, shared: opts.Shared, history: opts.History}
	m := &merger{ctx: ctx, fleet: f, role: role, root: &node{kids: map[string]*node{}}, removed: map[string]string{}}
	res := &Result{Role: role, Epoch: f.Epoch, Removed: m.removed, r: rd}
	for _, o := range role.Overlays {
		if err := ctx.Err(); err != nil {
			rd.close()
			return nil, err
		}
		l, err := rd.read(o)
		if err != nil {
			rd.close()
			where := fmt.Sprintf("%s: role %s, overlay %q", o.Pos, role.Name, o.Name)
			if errors.Is(err, os.ErrNotExist) {
				where += ": source missing"
			}
			return nil, &SourceError{Pos: o.Pos, Source: o.Source, Err: within(where, err)}
		}
		res.Inputs = append(res.Inputs, tree.Input{Name: o.Name, Kind: string(o.Kind), Source: f.Rel(o.Source), Digest: l.digest(), Entries: l.len()})
		if err := m.apply(o, l); err != nil {
			rd.close()
			return nil, within(fmt.Sprintf("%s: role %s", o.Pos, role.Name), err)
		}
	}
	var entries []*tree.Entry
	m.flatten(m.root, &entries)
	if err := ctx.Err(); err != nil {
		rd.close()
		return nil, err
	}
	if err := m.applyRules(entries); err != nil {
		rd.close()
		return nil, within(fmt.Sprintf("%s: role %s", role.File, role.Name), err)
	}
	if err := ctx.Err(); err != nil {
		rd.close()
		return nil, err
	}
	t, err := tree.New(entries)
	if err != nil {
		rd.close()
		return nil, within(fmt.Sprintf("%s: role %s", role.File, role.Name), err)
	}
	t.Normalize()
	// The names of one inode share its metadata: the primary's.
	for _, e := range t.Entries {
		if e.Type == tree.Hardlink {
			p := t.Get(e.Target)
			e.Mode, e.UID, e.GID = p.Mode, p.UID, p.GID
			e.SetNames(p.Owner(), p.Group())
			e.ModTime = p.ModTime
			e.SetXattrs(p.Xattrs())
		}
	}
	res.Tree = t
	res.Deploys = rd.deployOrder(t)
	return res, nil
}

func (m *merger) lookup(p string) (parent, n *node) {
	parent = m.root
	for {
		c, rest, more := strings.Cut(p, "/")
		if !more {
			return parent, parent.kids[c]
		}
		if parent = parent.kids[c]; parent == nil {
			return nil, nil
		}
		p = rest
	}
}

func (m *merger) remove(p, why string) {
	parent, n := m.lookup(p)
	if n == nil {
		return
	}
	delete(parent.kids, n.e.Name())
	m.removed[p] = why
}

// apply merges layer l of overlay o into the tree built so far.
func (m *merger) apply(o *roles.Overlay, l *layer) error {
	m.lastDir, m.lastNode = "", nil // removals below may take its node
	// Removals first: they act on the layers below only.
	for _, g := range o.Remove {
		var hits []string
		var pb tree.PathBuf
		m.walk(m.root, func(e *tree.Entry) bool {
			if glob.Match(g.Pattern, pb.Of(e)) {
				hits = append(hits, e.Path())
				return false // its subtree goes with it
			}
			return true
		})
		for _, p := range hits {
			m.remove(p, fmt.Sprintf("overlay %q, remove %q (%s)", o.Name, g.Pattern, m.fleet.Where(g.Pos)))
		}
	}
	for _, p := range l.whiteouts {
		m.remove(p, fmt.Sprintf("overlay %q, whiteout", o.Name))
	}
	for _, d := range l.opaque {
		var n *node
		if d == "" {
			n = m.root
		} else {
			_, n = m.lookup(d)
		}
		if n != nil && n.kids != nil {
			for name, k := range n.kids {
				m.removed[k.e.Path()] = fmt.Sprintf("overlay %q, opaque directory %q", o.Name, d)
				delete(n.kids, name)
			}
		}
	}
	var errs []error
	refused := map[string]bool{}
	for i, e := range l.sorted() {
		if i%checkEvery == 0 {
			if err := m.ctx.Err(); err != nil {
				return err
			}
		}
		// A build adds these to every volume itself, and reading an image
		// back leaves them out, so what an overlay put there would make
		// the image disagree with its own manifest.
		if top := e.Top(); reserved[top] != "" {
			if !refused[top] {
				refused[top] = true
				errs = append(errs, fmt.Errorf("%s: overlay %q: %s; no overlay may supply it: %w", e.Path(), o.Name, reserved[top], ErrReserved))
			}
			continue
		}
		if err := m.add(o, e); err != nil {
			errs = append(errs, err)
			if len(errs) == 20 {
				errs = append(errs, fmt.Errorf("overlay %q: more conflicts not shown", o.Name))
				break
			}
		}
	}
	return errors.Join(errs...)
}

func (m *merger) add(o *roles.Overlay, e *tree.Entry) error {
	parent := m.root
	// Walk the components as substrings of e's parent path: no slice per
	// entry, and the map keys share the parent's interned bytes.
	dir, name := e.Parent(), e.Name()
	end := -1 // where in dir the component the walk passed last ends
	switch {
	case dir == "":
		end = 0
	case m.lastNode != nil && dir == m.lastDir:
		parent, end = m.lastNode, len(dir)
	}
	for end < len(dir) {
		start := end + 1
		end = strings.IndexByte(dir[start:], '/')
		if end < 0 {
			end = len(dir)
		} else {
			end += start
		}
		c := dir[start:end]
		n := parent.kids[c]
		if n == nil {
			d := &tree.Entry{
				Type: tree.Dir, Mode: m.fleet.Defaults.DirMode,
				UID: m.fleet.Owners["root"], GID: m.fleet.Groups["root"],
				ModTime: m.fleet.Epoch, Implicit: true,
			}
			d.SetPath(dir[:end])
			d.SetNames("root", "root")
			d.SetOverlay(o.Name)
			n = &node{e: d, kids: map[string]*node{}}
			parent.kids[d.Name()] = n
		} else if n.e.Type != tree.Dir {
			return fmt.Errorf("%s: overlay %q adds %s below %s, a %s from overlay %q: %w",
				e.Path(), o.Name, e.Path(), n.e.Path(), n.e.Type, n.e.Overlay(), ErrConflict)
		}
		parent = n
	}
	if dir != "" {
		m.lastDir, m.lastNode = dir, parent
	}
	old := parent.kids[name]
	if old == nil {
		n := &node{e: e}
		if e.Type == tree.Dir {
			n.kids = map[string]*node{}
		}
		parent.kids[name] = n
		return nil
	}
	if (old.e.Type == tree.Dir) != (e.Type == tree.Dir) {
		return fmt.Errorf("%s: overlay %q replaces a %s from overlay %q with a %s; remove it first (remove: [%q]): %w",
			e.Path(), o.Name, old.e.Type, old.e.Overlay(), e.Type, e.Path(), ErrConflict)
	}
	policy := o.Conflict
	if len(o.Conflicts) > 0 {
		policy = policyFor(o, e.Path())
	}
	if e.Type == tree.Dir {
		// Directories merge; only their own metadata can conflict.
		if policy != roles.Override && !sameMeta(old.e, e) {
			return fmt.Errorf("%s: overlay %q and overlay %q give the directory different metadata (%s) and the policy is %q: %w",
				e.Path(), old.e.Overlay(), o.Name, metaDiff(old.e, e), policy, ErrConflict)
		}
		e.SetShadowed(shadow(old.e))
		old.e = e
		return nil
	}
	switch policy {
	case roles.Fail:
		return fmt.Errorf("%s: supplied by overlay %q and again by overlay %q, whose conflict policy is \"error\": %w",
			e.Path(), old.e.Overlay(), o.Name, ErrConflict)
	case roles.Identical:
		if d := entryDiff(e, old.e); d != "" { // the upper overlay's values first
			return fmt.Errorf("%s: overlay %q differs from overlay %q (%s) and the policy is \"identical\": %w",
				e.Path(), o.Name, old.e.Overlay(), d, ErrConflict)
		}
	}
	e.SetShadowed(shadow(old.e))
	old.e = e
	return nil
}

func shadow(old *tree.Entry) []string {
	s := append([]string(nil), old.Shadowed()...)
	if !old.Implicit {
		s = append(s, old.Overlay())
	}
	return s
}

// policyFor returns the conflict policy of o for path p: the last matching
// conflicts: glob, else the overlay's own.
func policyFor(o *roles.Overlay, p string) roles.Policy {
	policy := o.Conflict
	for _, c := range o.Conflicts {
		if glob.Match(c.Pattern, p) {
			policy = c.Policy
		}
	}
	return policy
}

func sameMeta(a, b *tree.Entry) bool {
	return metaDiff(a, b) == ""
}

func metaDiff(a, b *tree.Entry) string {
	var d []string
	if a.Mode != b.Mode {
		d = append(d, fmt.Sprintf("mode %04o vs %04o", a.Mode, b.Mode))
	}
	if a.UID != b.UID || a.GID != b.GID {
		d = append(d, fmt.Sprintf("owner %d:%d vs %d:%d", a.UID, a.GID, b.UID, b.GID))
	}
	if !tree.EqualXattrs(a.Xattrs(), b.Xattrs()) {
		d = append(d, "xattrs")
	}
	return strings.Join(d, ", ")
}

func entryDiff(a, b *tree.Entry) string {
	var d []string
	if a.Type != b.Type {
		d = append(d, fmt.Sprintf("type %s vs %s", a.Type, b.Type))
	}
	if a.Digest != b.Digest || a.Size != b.Size {
		d = append(d, "content")
	}
	if a.Target != b.Target {
		d = append(d, fmt.Sprintf("target %q vs %q", a.Target, b.Target))
	}
	if md := metaDiff(a, b); md != "" {
		d = append(d, md)
	}
	return strings.Join(d, ", ")
}

// walk visits entries in tree order; fn returns false to skip a subtree.
// Once m.ctx is done it stops short, and Merge returns the context's error.
func (m *merger) walk(n *node, fn func(*tree.Entry) bool) {
	if m.ctx.Err() != nil {
		return
	}
	for _, name := range sortedKids(n) {
		k := n.kids[name]
		if fn(k.e) && k.kids != nil {
			m.walk(k, fn)
		}
	}
}

func (m *merger) flatten(n *node, out *[]*tree.Entry) {
	m.walk(n, func(e *tree.Entry) bool {
		*out = append(*out, e)
		return true
	})
}

func sortedKids(n *node) []string {
	names := make([]string, 0, len(n.kids))
	for name := range n.kids {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// applyRules sets owner, group and mode from the metadata rules: fleet,
// then role, then the supplying overlay's; the last match wins per field.
func (m *merger) applyRules(entries []*tree.Entry) error {
	byName := map[string]*roles.Overlay{}
	for _, o := range m.role.Overlays {
		byName[o.Name] = o
	}
	common := append(append([]roles.Rule(nil), m.fleet.Rules...), m.role.Rules...)
	// A rule's position, named once rather than for every entry it
	// matches: entries share the string.
	where := map[roles.Pos]string{}
	whereOf := func(p roles.Pos) string {
		w, ok := where[p]
		if !ok {
			w = m.fleet.Where(p)
			where[p] = w
		}
		return w
	}
	var errs []error
	var pb tree.PathBuf
	for i, e := range entries {
		if i%checkEvery == 0 {
			if err := m.ctx.Err(); err != nil {
				return err
			}
		}
		p := pb.Of(e) // only until the next entry
		// Owner and mode written on an inline entry are the most specific
		// word on it: rules do not override them.
		ownerRule, modeRule := e.OwnerRule(), e.ModeRule()
		owner, group := e.Owner(), e.Group()
		ownerSet, modeSet := ownerRule != "", modeRule != ""
		allowSetuid := modeSet
		var allowCap bool
		apply := func(rules []roles.Rule) {
			for _, r := range rules {
				if !glob.Match(r.Pattern, p) {
					continue
				}
				if r.UID != nil && !ownerSet {
					e.UID, owner, ownerRule = *r.UID, r.Owner, whereOf(r.Pos)
				}
				if r.GID != nil && !ownerSet {
					e.GID, group, ownerRule = *r.GID, r.Group, whereOf(r.Pos)
				}
				if r.Mode != nil && !modeSet {
					e.Mode, modeRule = *r.Mode, whereOf(r.Pos)
					allowSetuid = allowSetuid || *r.Mode&(tree.ModeSetuid|tree.ModeSetgid) != 0
				}
				allowSetuid = allowSetuid || r.Setuid
				allowCap = allowCap || r.Capability
			}
		}
		apply(common)
		o := byName[e.Overlay()]
		if o != nil {
			apply(o.Rules)
		}
		e.SetRules(ownerRule, modeRule)
		e.SetNames(owner, group)
		if e.Mode&(tree.ModeSetuid|tree.ModeSetgid) != 0 && !allowSetuid && e.Type != tree.Symlink {
			errs = append(errs, fmt.Errorf("%s: mode %04o from overlay %q has a setuid or setgid bit; allow it with a rule (setuid: true): %w",
				e.Path(), e.Mode, e.Overlay(), ErrUnsafe))
		}
		if !allowCap && hasXattr(e, capabilityXattr) && e.Type != tree.Hardlink {
			src := ""
			if o != nil && o.Source != "" {
				src = " (" + m.fleet.Rel(o.Source) + ")"
			}
			errs = append(errs, fmt.Errorf("%s: overlay %q%s gives it file capabilities (%s), which grant privileges as setuid does; allow them with a rule (capability: true): %w",
				e.Path(), e.Overlay(), src, capabilityXattr, ErrUnsafe))
		}
	}
	return errors.Join(errs...)
}

// capabilityXattr holds a file's capabilities (capabilities(7)).
const capabilityXattr = "security.capability"

func hasXattr(e *tree.Entry, name string) bool {
	for _, x := range e.Xattrs() {
		if x.Name == name {
			return true
		}
	}
	return false
}

// Activated checks that every entry of a merged role is under opt/ or
// etc/, the parts of a volume activation serves on a VM: anything else
// would be in the image and never used. What a service writes is declared
// as the role's state: and lives on the root disk. A fleet that has a
// use for another name at the volume root (a service reading /1/srv
// itself) declares it: volume: {top_level: [srv]}. validate and build
// refuse such a role; Merge itself does not, so that plan and explain
// still show it.
func (r *Result) Activated() error {
	t, role := r.Tree, r.Role
	var errs []error
	for _, e := range t.Entries {
		if name := e.Name(); e.Parent() != "" || name == "opt" || name == "etc" || r.r.fleet.TopLevelAllowed(name) {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: role %s: /%s (from overlay %q): outside opt/ and etc/, so never activated on a VM; put it under opt/, declare what services write as state: in the role, or declare a name the VM uses at /1/NAME itself in %s (volume: {top_level: [%q]}): %w",
			role.File, role.Name, e.Path(), e.Overlay(), roles.FleetFile, e.Path(), ErrTopLevel))
	}
	return errors.Join(errs...)
}

// ErrTopLevel marks an entry at the volume root outside opt/ and etc/
// that the fleet has not declared.
var ErrTopLevel = errors.New("undeclared top-level entry")
