// Package activate attaches a mounted olimage volume to a VM's root file
// system: it makes the symlinks of the volume's activation plan (/opt and
// /etc paths into /1), moving aside what they replace, and records every
// step in a journal on the root disk so that it can be undone exactly,
// switched to another image, and completed after an interruption. Before
// changing anything it checks the mounted volume's files against the
// manifest the volume carries (type, mode, owner, size and content
// sha256: content.go), and the root disk's accounts, state directories and
// declared secrets against the plan. It also derives the fstab line and
// systemd mount unit that mount a volume. It does not build images, read
// their ext4 structures (verify does, from the image file or device), or
// check a signature (the CLI does that first).
package activate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/internetarchive/olimage/manifest"
)

// ReportSchema identifies the Report activate, deactivate and recover print
// with --json (manifest.PlanSchema is the plan of a build).
const ReportSchema = "olimage.activate/v1"

// Options control Activate and Deactivate.
type Options struct {
	// Root is the root file system to change, "/" on the VM itself.
	Root string
	// Volume is where the volume is mounted, as seen from Root: "/1". The
	// manifest is read at Root/Volume, and links point to Volume/target.
	Volume string
	// Force activates a volume whose manifest fails verification.
	Force bool
	// DryRun plans and reports the changes, and makes none.
	DryRun bool
	// RoleChange activates a volume of another role than the active
	// image's.
	RoleChange bool
	// ForceAccounts activates an image whose files use ids that differ
	// from the root's accounts of the same names.
	ForceAccounts bool
	// Systemctl is told about the units a run changes. Nil means the
	// machine's own systemctl when Root is "/" and systemd runs it, and
	// none otherwise.
	Systemctl Systemctl

	// switchTo names, by service, the deploy bins Switch links.
	switchTo map[string]string

	// hook, in tests, is called at every point where an interruption
	// could happen; an error from it stops the run there.
	hook func() error
}

// Change is one step of activation or deactivation. Ops: mkdir (a
// missing parent directory of a link), move (what is at Path, aside to
// Backup), link (Path becomes a symlink to Target), keep (the link is
// already in place), unlink (remove a link olimage made), restore (move
// Backup back to Path), rmdir (remove a directory olimage made, if empty).
type Change struct {
	Op     Op     `json:"op"`
	Path   string `json:"path"` // relative to the root
	Target string `json:"target,omitempty"`
	Backup string `json:"backup,omitempty"` // relative to the root
	// Content is what a write puts in the file.
	Content string `json:"content,omitempty"`
	// Resume is true for a step an interrupted run had started.
	Resume bool `json:"resume,omitempty"`
}

// Change ops that only undo or report.
const (
	OpKeep    Op = "keep"
	OpUnlink  Op = "unlink"
	OpRestore Op = "restore"
	OpRmdir   Op = "rmdir"
	OpRemove  Op = "remove" // remove a file olimage wrote
)

// Report is what Activate and Deactivate did, or with DryRun would do.
type Report struct {
	Schema   string    `json:"schema"`
	DryRun   bool      `json:"dry_run"`
	Root     string    `json:"root"`
	Volume   string    `json:"volume,omitempty"`
	Image    *ImageRef `json:"image"`    // active after the run; nil after deactivate
	Previous *ImageRef `json:"previous"` // active before the run, nil if none
	Changes  []Change  `json:"changes"`
}

// Changed reports whether the run changes anything.
func (r *Report) Changed() bool {
	for _, c := range r.Changes {
		if c.Op != OpKeep {
			return true
		}
	}
	return false
}

func (o *Options) normalize(needVolume bool) error {
	if o.Root == "" {
		o.Root = "/"
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return err
	}
	o.Root = root
	// A mistyped root is an error, not an empty root with nothing active.
	if fi, err := os.Stat(root); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("root %s: %w", root, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("root %s: not a directory", root)
	}
	if needVolume {
		if o.Volume == "" {
			o.Volume = manifest.DefaultMount
		}
		if !path.IsAbs(o.Volume) || path.Clean(o.Volume) != o.Volume || o.Volume == "/" {
			return fmt.Errorf("volume %q: want the absolute path where the volume is mounted, such as /1", o.Volume)
		}
	}
	return nil
}

// Activate makes the links of the activation plan of the volume mounted
// at opts.Volume, completing first any run that was interrupted, and
// removing the links of a previously activated image that the plan no
// longer names (restoring what they had replaced).
func Activate(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.normalize(true); err != nil {
		return nil, err
	}
	dir := filepath.Join(opts.Root, opts.Volume)
	m, err := ReadManifest(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: %w", ErrNoVolume, err)
		}
		return nil, fmt.Errorf("volume %s: %w", opts.Volume, err)
	}
	if m.Activation != nil {
		// Whatever --force says, and before anything changes.
		if err := errors.Join(checkConfined(m), checkPlan(m.Activation, opts.Volume)); err != nil {
			return nil, err
		}
		if err := checkSensitive(opts.Root, m); err != nil {
			return nil, err
		}
	}
	if !opts.ForceAccounts {
		if err := checkAccounts(opts.Root, m); err != nil {
			return nil, err
		}
	}
	var secrets []goal
	if m.Activation != nil {
		if secrets, err = secretLinks(opts.Root, m); err != nil {
			return nil, err
		}
	}
	if err := Verify(dir, m); err != nil && (!opts.Force || m.Activation == nil) {
		return nil, err
	}
	img := &ImageRef{Fleet: m.Fleet, FleetVersion: m.FleetVersion, Role: m.Role, Label: m.Label, UUID: m.UUID, Tree: m.TreeDigest, Volume: opts.Volume}
	r := &run{opts: opts}
	if err := r.open(ctx); err != nil {
		return nil, err
	}
	defer r.close()
	if err := checkRole(r.j.Image, img, opts.RoleChange); err != nil {
		return nil, err
	}
	rep := &Report{Schema: ReportSchema, DryRun: opts.DryRun, Root: opts.Root, Volume: opts.Volume, Image: img, Previous: r.j.Image, Changes: []Change{}}
	rep.Changes = append(rep.Changes, r.resume()...)
	if !opts.DryRun {
		if err := r.complete(ctx); err != nil {
			return rep, err
		}
	}
	if err := checkState(m.Activation.State); err != nil {
		return rep, err
	}
	goals, err := r.goals(m, dir, img, opts.switchTo)
	if err != nil {
		return rep, err
	}
	goals = append(goals, secrets...)
	plan, err := r.planActivate(goals, img)
	if err != nil {
		return rep, err
	}
	rep.Changes = append(rep.Changes, plan...)
	if opts.DryRun {
		st, err := makeState(opts.Root, m.Activation.State, true)
		rep.Changes = append(rep.Changes, st...)
		return rep, err
	}
	r.j.Image = img
	if err := r.execute(ctx, "activate", plan); err != nil {
		return rep, err
	}
	if err := pruneBackups(opts.Root, r.j); err != nil {
		return rep, err
	}
	st, err := makeState(opts.Root, m.Activation.State, false)
	rep.Changes = append(rep.Changes, st...)
	if err != nil {
		return rep, err
	}
	return rep, r.systemd(ctx, plan, goals)
}

// Deactivate undoes everything the journal records, in reverse order:
// links removed, originals moved back, directories it made removed if
// empty; then it clears the journal.
func Deactivate(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.normalize(false); err != nil {
		return nil, err
	}
	r := &run{opts: opts}
	if err := r.open(ctx); err != nil {
		return nil, err
	}
	defer r.close()
	rep := &Report{Schema: ReportSchema, DryRun: opts.DryRun, Root: opts.Root, Previous: r.j.Image, Changes: []Change{}}
	var plan []Change
	for i := len(r.j.Actions) - 1; i >= 0; i-- {
		a := r.j.Actions[i]
		c := undoChange(a)
		c.Resume = a.State != StateDone
		plan = append(plan, c)
	}
	rep.Changes = append(rep.Changes, plan...)
	if opts.DryRun {
		return rep, nil
	}
	if err := r.execute(ctx, "deactivate", plan); err != nil {
		return rep, err
	}
	r.j.Image = nil
	if err := r.j.save(opts.Root); err != nil {
		return rep, err
	}
	if err := pruneBackups(opts.Root, r.j); err != nil {
		return rep, err
	}
	// The state directory goes too, if nothing else is in it.
	os.Remove(filepath.Join(opts.Root, BackupDir))
	os.Remove(filepath.Join(opts.Root, StateDir))
	return rep, r.systemd(ctx, plan, nil)
}

func undoChange(a Action) Change {
	switch a.Op {
	case OpLink:
		return Change{Op: OpUnlink, Path: a.Path, Target: a.Target}
	case OpMove:
		return Change{Op: OpRestore, Path: a.Path, Backup: a.Backup}
	case OpWrite:
		return Change{Op: OpRemove, Path: a.Path, Content: a.Content}
	}
	return Change{Op: OpRmdir, Path: a.Path}
}

// run is one activation or deactivation: the journal, held under a lock,
// and a view of the root file system as the planned changes leave it.
type run struct {
	opts   Options
	j      *Journal
	unlock func()
	v      *view
}

func (r *run) open(ctx context.Context) error {
	unlock, err := lock(ctx, r.opts.Root, r.opts.DryRun)
	if err != nil {
		return err
	}
	r.unlock = unlock
	if !r.opts.DryRun {
		// A run killed while saving the journal leaves its temporary
		// file; the journal itself is whole, old or new.
		tmp := filepath.Join(r.opts.Root, JournalFile+".tmp")
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			unlock()
			return err
		}
	}
	j, err := loadJournal(r.opts.Root)
	if err != nil {
		unlock()
		return err
	}
	r.j = j
	r.v = &view{root: r.opts.Root, over: map[string]override{}}
	return nil
}

// close releases the lock and removes the state directory if the run
// left nothing in it (a refused first activation).
func (r *run) close() {
	if !r.opts.DryRun && r.j != nil && r.j.Image == nil && len(r.j.Actions) == 0 {
		os.Remove(filepath.Join(r.opts.Root, StateDir))
	}
	r.unlock()
}

// resume lists the steps an interrupted run left unfinished, and in the
// view assumes they are finished; so does the journal in a dry run (which
// never writes it), as complete would leave it.
func (r *run) resume() []Change {
	var out []Change
	var after []Action
	for _, a := range r.j.Actions {
		var c Change
		switch a.State {
		case StateDone:
			after = append(after, a)
			continue
		case StatePending:
			c = Change{Op: a.Op, Path: a.Path, Target: a.Target, Backup: a.Backup, Content: a.Content, Resume: true}
			a.State = StateDone
			after = append(after, a)
		case StateUndoing:
			c = undoChange(a)
			c.Resume = true
		}
		r.v.apply(c)
		out = append(out, c)
	}
	if r.opts.DryRun {
		r.j.Actions = after
	}
	return out
}

// complete finishes the steps an interrupted run left unfinished.
func (r *run) complete(ctx context.Context) error {
	for i := 0; i < len(r.j.Actions); i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		a := r.j.Actions[i]
		switch a.State {
		case StatePending:
			if err := do(r.opts.Root, a); err != nil {
				return err
			}
			r.j.Actions[i].State = StateDone
		case StateUndoing:
			if err := undo(r.opts.Root, a); err != nil {
				return err
			}
			r.j.Actions = slices.Delete(r.j.Actions, i, i+1)
			i--
		default:
			continue
		}
		if err := r.j.save(r.opts.Root); err != nil {
			return err
		}
	}
	r.v = &view{root: r.opts.Root, over: map[string]override{}}
	return nil
}

// planActivate works out the steps from the journal's links and files to
// the goals.
func (r *run) planActivate(goals []goal, img *ImageRef) ([]Change, error) {
	want := map[string]goal{}
	for _, g := range goals {
		want[g.Path] = g
	}
	plan, linked, err := r.planUndo(want)
	if err != nil {
		return nil, err
	}
	steps, err := r.planGoals(goals, linked, img)
	if err != nil {
		return nil, err
	}
	plan = append(plan, steps...)
	return append(plan, r.planRmdirs(want)...), nil
}

// planUndo plans what goes first: our links and files that are gone,
// wrong or no longer wanted, with the originals they replaced. It returns
// the links and files already in place as wanted (path to target).
func (r *run) planUndo(want map[string]goal) (plan []Change, linked map[string]string, err error) {
	v := r.v
	add := func(c Change) {
		v.apply(c)
		plan = append(plan, c)
	}
	linked = map[string]string{}
	for i := len(r.j.Actions) - 1; i >= 0; i-- {
		act := r.j.Actions[i]
		if act.Op != OpLink && act.Op != OpWrite {
			continue
		}
		n, err := v.lstat(act.Path)
		if err != nil {
			return nil, nil, err
		}
		g, wanted := want[act.Path]
		inPlace := act.Op == OpLink && n.kind == kindSymlink && n.text == act.Target ||
			act.Op == OpWrite && n.kind == kindOther && holds(n, act.Content)
		if inPlace && wanted && g.File == (act.Op == OpWrite) && g.Target == act.Target && g.Content == act.Content {
			linked[act.Path] = act.Target
			continue
		}
		if !inPlace && n.kind != kindAbsent {
			if act.Op == OpWrite {
				return nil, nil, fmt.Errorf("/%s: %w: olimage wrote this file, now it is %s or was changed; move it away and run again", act.Path, ErrConflict, n.describe())
			}
			return nil, nil, fmt.Errorf("/%s: %w: olimage linked it to %s, now it is %s; move it away and run again", act.Path, ErrConflict, act.Target, n.describe())
		}
		if act.Op == OpWrite {
			add(Change{Op: OpRemove, Path: act.Path, Content: act.Content})
		} else {
			add(Change{Op: OpUnlink, Path: act.Path, Target: act.Target})
		}
		if k := r.j.find(OpMove, act.Path); k >= 0 {
			add(Change{Op: OpRestore, Path: act.Path, Backup: r.j.Actions[k].Backup})
		}
	}
	// Originals whose link is gone (an interruption between the two
	// steps) go back if the plan no longer links their path.
	for i := len(r.j.Actions) - 1; i >= 0; i-- {
		act := r.j.Actions[i]
		if _, wanted := want[act.Path]; act.Op == OpMove && !r.j.placed(act.Path) && !wanted {
			add(Change{Op: OpRestore, Path: act.Path, Backup: act.Backup})
		}
	}
	return plan, linked, nil
}

// planGoals plans the goals' links and files, in order. What refuses one
// goal does not stop the others from being checked: the refusals come
// back together.
func (r *run) planGoals(goals []goal, linked map[string]string, img *ImageRef) ([]Change, error) {
	backups := map[string]bool{}
	for _, act := range r.j.Actions {
		if act.Op == OpMove {
			backups[act.Backup] = true
		}
	}
	var plan []Change
	var errs []error
	for _, l := range goals {
		if _, ok := linked[l.Path]; ok {
			plan = append(plan, Change{Op: OpKeep, Path: l.Path, Target: l.Target})
			continue
		}
		steps, refused, err := r.planGoal(l, linked, backups, img)
		if err != nil {
			return nil, err
		}
		if refused != nil {
			errs = append(errs, refused)
			continue
		}
		plan = append(plan, steps...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return plan, nil
}

// planGoal plans one goal: the directories its path needs, moving aside
// what is in its place, then the link or file. refused says why the goal
// cannot be placed; err is a failure to look at the root file system.
func (r *run) planGoal(l goal, linked map[string]string, backups map[string]bool, img *ImageRef) (steps []Change, refused, err error) {
	v := r.v
	parts := splitPath(l.Path)
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		n, err := v.lstat(p)
		if err != nil {
			return nil, nil, err
		}
		switch n.kind {
		case kindDir:
			continue
		case kindAbsent:
			c := Change{Op: OpMkdir, Path: p}
			v.apply(c)
			steps = append(steps, c)
			continue
		case kindSymlink:
			who := "olimage did not make it"
			if _, ours := linked[p]; ours {
				who = "olimage made it for another link"
			}
			return nil, fmt.Errorf("/%s: %w: /%s is a symlink to %s (%s); olimage never links through a symlink", l.Path, ErrUnsafe, p, n.text, who), nil
		default:
			return nil, fmt.Errorf("/%s: %w: /%s is %s, not a directory", l.Path, ErrUnsafe, p, n.describe()), nil
		}
	}
	n, err := v.lstat(l.Path)
	if err != nil {
		return nil, nil, err
	}
	if n.kind != kindAbsent && r.j.find(OpMove, l.Path) >= 0 && !r.j.placed(l.Path) {
		k := r.j.find(OpMove, l.Path)
		return nil, fmt.Errorf("/%s: %w: its original is kept at /%s, and the path is taken again by %s; move it away and run again", l.Path, ErrConflict, r.j.Actions[k].Backup, n.describe()), nil
	}
	if n.kind != kindAbsent {
		b := path.Join(BackupDir, img.ID(), l.Path)
		for k := 1; backups[b] || exists(filepath.Join(r.opts.Root, b)); k++ {
			b = fmt.Sprintf("%s.%d", path.Join(BackupDir, img.ID(), l.Path), k)
		}
		backups[b] = true
		c := Change{Op: OpMove, Path: l.Path, Backup: b}
		v.apply(c)
		steps = append(steps, c)
	}
	c := Change{Op: OpLink, Path: l.Path, Target: l.Target}
	if l.File {
		c = Change{Op: OpWrite, Path: l.Path, Content: l.Content}
	}
	v.apply(c)
	return append(steps, c), nil, nil
}

// planRmdirs plans, last, the removal of directories olimage made that no
// link needs any more.
func (r *run) planRmdirs(want map[string]goal) []Change {
	var plan []Change
	for i := len(r.j.Actions) - 1; i >= 0; i-- {
		act := r.j.Actions[i]
		if act.Op != OpMkdir {
			continue
		}
		needed := false
		for p := range want {
			if under(p, act.Path) {
				needed = true
				break
			}
		}
		if !needed {
			c := Change{Op: OpRmdir, Path: act.Path}
			r.v.apply(c)
			plan = append(plan, c)
		}
	}
	return plan
}

// execute carries out the plan, journaling each step before and after.
func (r *run) execute(ctx context.Context, name string, plan []Change) error {
	root := r.opts.Root
	r.j.Running = name
	if err := r.j.save(root); err != nil {
		return err
	}
	for _, c := range plan {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.hook(); err != nil {
			return err
		}
		switch c.Op {
		case OpKeep:
			continue
		case OpMkdir, OpMove, OpLink, OpWrite:
			a := Action{Op: c.Op, Path: c.Path, Target: c.Target, Backup: c.Backup, Content: c.Content, State: StatePending}
			i := r.j.find(c.Op, c.Path)
			if i < 0 {
				r.j.Actions = append(r.j.Actions, a)
				i = len(r.j.Actions) - 1
			} else {
				r.j.Actions[i] = a
			}
			if err := r.j.save(root); err != nil {
				return err
			}
			if err := r.hook(); err != nil {
				return err
			}
			if err := do(root, a); err != nil {
				return err
			}
			if err := r.hook(); err != nil {
				return err
			}
			r.j.Actions[i].State = StateDone
		case OpUnlink, OpRestore, OpRmdir, OpRemove:
			op := map[Op]Op{OpUnlink: OpLink, OpRestore: OpMove, OpRmdir: OpMkdir, OpRemove: OpWrite}[c.Op]
			i := r.j.find(op, c.Path)
			if i < 0 {
				return fmt.Errorf("/%s: no %s action in the journal to undo", c.Path, op)
			}
			r.j.Actions[i].State = StateUndoing
			if err := r.j.save(root); err != nil {
				return err
			}
			if err := r.hook(); err != nil {
				return err
			}
			if err := undo(root, r.j.Actions[i]); err != nil {
				return err
			}
			if err := r.hook(); err != nil {
				return err
			}
			r.j.Actions = slices.Delete(r.j.Actions, i, i+1)
		}
		if err := r.j.save(root); err != nil {
			return err
		}
	}
	r.j.Running = ""
	return r.j.save(root)
}

func (r *run) hook() error {
	if r.opts.hook != nil {
		return r.opts.hook()
	}
	return nil
}

func do(root string, a Action) error {
	switch a.Op {
	case OpMkdir:
		return doMkdir(root, a.Path)
	case OpMove:
		return doMove(root, a.Path, a.Backup)
	case OpLink:
		return doLink(root, a.Path, a.Target)
	case OpWrite:
		return doWrite(root, a.Path, a.Content)
	}
	return fmt.Errorf("unknown action %q", a.Op)
}

func undo(root string, a Action) error {
	switch a.Op {
	case OpMkdir:
		return undoMkdir(root, a.Path)
	case OpMove:
		return undoMove(root, a.Path, a.Backup)
	case OpLink:
		return undoLink(root, a.Path, a.Target)
	case OpWrite:
		return undoWrite(root, a.Path, a.Content)
	}
	return fmt.Errorf("unknown action %q", a.Op)
}

// pruneBackups removes the empty directories left under the backup
// directory once originals went back; it never enters or removes a
// backup the journal still records.
func pruneBackups(root string, j *Journal) error {
	base := filepath.Join(root, BackupDir)
	kept := map[string]bool{}
	for _, a := range j.Actions {
		if a.Op == OpMove {
			kept[filepath.Join(root, a.Backup)] = true
		}
	}
	var dirs []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if kept[p] {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() && p != base {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i]) // fails, as it should, when not empty
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func splitPath(p string) []string { return strings.Split(p, "/") }

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}
