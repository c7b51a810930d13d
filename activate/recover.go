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
)

// ErrJournalIntact is returned by Recover when the journal is readable:
// deactivate undoes exactly what it records.
var ErrJournalIntact = errors.New("the journal is intact")

// BrokenJournal is where Recover moves an unreadable journal, relative to
// the root, for a person to read.
const BrokenJournal = JournalFile + ".broken"

// Recover puts the root back without the journal, when it is lost or
// corrupt: every original under the backup directory goes back to its
// path, replacing the symlink into the volume mounted at opts.Volume
// (or the file activate wrote) there; then the other symlinks into the
// volume under /etc, at the top of /opt and inside a directory of deploys
// there, the links under /etc to the VM's copies of secrets (into
// SecretsDir), and the files activate wrote under /etc (they start with
// WrittenMark), are removed. Nothing else is touched:
// directories activate made stay. Anything else at a path an original
// goes back to refuses the whole recovery before anything changes.
func Recover(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.normalize(true); err != nil {
		return nil, err
	}
	unlock, err := lock(ctx, opts.Root, opts.DryRun)
	if err != nil {
		return nil, err
	}
	defer unlock()
	jp := filepath.Join(opts.Root, JournalFile)
	if _, err := readJournal(opts.Root); err == nil && exists(jp) {
		return nil, fmt.Errorf("%s: %w: recover is for a journal lost or unreadable", jp, ErrJournalIntact)
	}
	rep := &Report{Schema: ReportSchema, DryRun: opts.DryRun, Root: opts.Root, Volume: opts.Volume, Changes: []Change{}}
	prefix := opts.Volume + "/"
	var errs []error
	restored := map[string]bool{}
	// Originals, image by image, then path by path in order.
	ids, err := readDirNames(filepath.Join(opts.Root, BackupDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var walk func(id, rel string) error
	walk = func(id, rel string) error {
		names, err := readDirNames(filepath.Join(opts.Root, BackupDir, id, rel))
		if err != nil {
			return err
		}
		for _, name := range names {
			p := path.Join(rel, name)
			b := path.Join(BackupDir, id, p)
			if restored[p] {
				errs = append(errs, fmt.Errorf("/%s: %w: originals kept at two places, the second /%s; restore one by hand", p, ErrConflict, b))
				continue
			}
			fi, err := os.Lstat(filepath.Join(opts.Root, p))
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				return err
			case fi.Mode()&fs.ModeSymlink != 0:
				t, err := os.Readlink(filepath.Join(opts.Root, p))
				if err != nil {
					return err
				}
				if !strings.HasPrefix(t, prefix) {
					errs = append(errs, fmt.Errorf("/%s: %w: its original is kept at /%s, and the path is a symlink to %s, not into %s; move it away and run again", p, ErrConflict, b, t, opts.Volume))
					continue
				}
				rep.Changes = append(rep.Changes, Change{Op: OpUnlink, Path: p, Target: t})
			case fi.Mode().IsRegular() && written(opts.Root, p):
				c, _ := writtenFile(opts.Root, p)
				rep.Changes = append(rep.Changes, Change{Op: OpRemove, Path: p, Content: c})
			case fi.IsDir():
				// Where activate moved an original below a directory of
				// the root, the backup holds that directory too.
				if bi, err := os.Lstat(filepath.Join(opts.Root, b)); err == nil && bi.IsDir() {
					if err := walk(id, p); err != nil {
						return err
					}
					continue
				}
				fallthrough
			default:
				errs = append(errs, fmt.Errorf("/%s: %w: its original is kept at /%s, and the path is %s; move it away and run again", p, ErrConflict, b, describe(filepath.Join(opts.Root, p), fi)))
				continue
			}
			restored[p] = true
			rep.Changes = append(rep.Changes, Change{Op: OpRestore, Path: p, Backup: b})
		}
		return nil
	}
	for _, id := range ids {
		if err := walk(id, ""); err != nil {
			return nil, err
		}
	}
	// Then the links into the volume that replaced nothing.
	links, err := volumeLinks(opts.Root, prefix)
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		if !restored[l.Path] && !slices.ContainsFunc(rep.Changes, func(c Change) bool { return c.Path == l.Path && c.Op == OpRemove }) {
			rep.Changes = append(rep.Changes, l)
		}
	}
	rep.Changes = append(rep.Changes, enablementLinks(opts.Root, rep.Changes)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opts.DryRun {
		return rep, nil
	}
	for _, c := range rep.Changes {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		switch c.Op {
		case OpUnlink:
			err = undoLink(opts.Root, c.Path, c.Target)
		case OpRemove:
			err = undoWrite(opts.Root, c.Path, c.Content)
		default:
			err = undoMove(opts.Root, c.Path, c.Backup)
		}
		if err != nil {
			return rep, err
		}
	}
	// The broken journal is kept for a person to read; the next activate
	// starts a new one.
	if err := os.Rename(jp, filepath.Join(opts.Root, BrokenJournal)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, err
	}
	if err := pruneBackups(opts.Root, &Journal{}); err != nil {
		return rep, err
	}
	os.Remove(filepath.Join(opts.Root, BackupDir))
	os.Remove(filepath.Join(opts.Root, StateDir))
	return rep, nil
}

// volumeLinks lists, as unlink steps, the symlinks whose text starts with
// prefix at the top of ROOT/opt and anywhere in ROOT/etc: where activate
// links.
func volumeLinks(root, prefix string) ([]Change, error) {
	var out []Change
	add := func(rel string) error {
		t, err := os.Readlink(filepath.Join(root, rel))
		if err == nil && strings.HasPrefix(t, prefix) {
			out = append(out, Change{Op: OpUnlink, Path: rel, Target: t})
		}
		return err
	}
	names, err := readDirNames(filepath.Join(root, "opt"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, n := range names {
		fi, err := os.Lstat(filepath.Join(root, "opt", n))
		switch {
		case err != nil:
		case fi.Mode()&fs.ModeSymlink != 0:
			if err := add("opt/" + n); err != nil {
				return nil, err
			}
		case fi.IsDir():
			// A directory of deploys is linked entry by entry.
			sub, err := deployDirLinks(root, "opt/"+n, prefix)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		}
	}
	secrets := "/" + SecretsDir + "/" // only activate links to the VM's secrets
	err = filepath.WalkDir(filepath.Join(root, "etc"), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if err == nil && d.Type().IsRegular() {
			// activate writes files only among the units.
			if !under(filepath.ToSlash(rel), UnitDir) {
				return nil
			}
			if c, ok := writtenFile(root, filepath.ToSlash(rel)); ok {
				out = append(out, Change{Op: OpRemove, Path: filepath.ToSlash(rel), Content: c})
			}
			return nil
		}
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, secrets) {
			out = append(out, Change{Op: OpUnlink, Path: filepath.ToSlash(rel), Target: t})
			return nil
		}
		return add(filepath.ToSlash(rel))
	})
	return out, err
}

// readDirNames lists a directory's names, sorted.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// ErrBadJournal is matched by the error of a journal that exists and
// cannot be read: only Recover goes on from there.
var ErrBadJournal = errors.New("unreadable journal")

type badJournalError struct{ error }

func (e badJournalError) Unwrap() error        { return e.error }
func (e badJournalError) Is(target error) bool { return target == ErrBadJournal }

// loadJournal reads the journal as readJournal does, and marks the error
// of one that exists but cannot be used.
func loadJournal(root string) (*Journal, error) {
	j, err := readJournal(root)
	if err != nil && exists(filepath.Join(root, JournalFile)) {
		return nil, badJournalError{err}
	}
	return j, err
}
