package activate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Where activation keeps its state, relative to the root.
const (
	StateDir    = "var/lib/olimage"
	JournalFile = StateDir + "/journal.json"
	BackupDir   = StateDir + "/backup"
)

// JournalSchema identifies the journal document.
const JournalSchema = "olimage.journal/v1"

// Op is what one step of activation does: its journal action's op, or a
// Change's in a report. The text is the wire form in journals and --json.
type Op string

// Ops of journal actions: what activation did to the root file system.
const (
	OpMkdir Op = "mkdir" // created a missing parent directory of a link
	OpMove  Op = "move"  // moved what was at Path aside to Backup
	OpLink  Op = "link"  // made Path a symlink to Target
	OpWrite Op = "write" // made Path a regular file holding Content (a unit file)
)

// ActionState is where a journal action is in its life.
type ActionState string

// States of a journal action.
const (
	StatePending ActionState = "pending" // about to be done; may or may not have happened
	StateDone    ActionState = "done"    // done
	StateUndoing ActionState = "undoing" // being undone; may or may not have happened
)

// Journal is what activation has done to a root file system, in order,
// so that it can be undone exactly, and so that an interrupted run can be
// completed: every action is written as pending before the file system
// changes and marked done after.
type Journal struct {
	Schema string    `json:"schema"`
	Image  *ImageRef `json:"image"` // the image last activated, nil if none
	// Running is "activate" or "deactivate" while a run is under way,
	// and stays so when it is interrupted, until a run completes.
	Running string   `json:"running,omitempty"`
	Actions []Action `json:"actions"`
}

// ImageRef names an activated image.
type ImageRef struct {
	Fleet        string `json:"fleet,omitempty"`
	FleetVersion string `json:"fleet_version,omitempty"`
	Role         string `json:"role"`
	Label        string `json:"label,omitempty"`
	UUID         string `json:"uuid"`
	Tree         string `json:"tree"`
	Volume       string `json:"volume"` // where the volume is mounted, as seen from the root
}

// ID names the image in backup paths: its UUID, or role and tree digest.
func (r *ImageRef) ID() string {
	if r.UUID != "" {
		return safeName(r.UUID)
	}
	t := r.Tree
	if len(t) > 12 {
		t = t[:12]
	}
	return safeName(r.Role + "-" + t)
}

func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' {
		return "image" + string(b)
	}
	return string(b)
}

// Action is one change activation made, or is making.
type Action struct {
	Op     Op     `json:"op"`               // mkdir, move, link or write
	Path   string `json:"path"`             // relative to the root: etc/nginx/nginx.conf
	Target string `json:"target,omitempty"` // link: the symlink's text
	Backup string `json:"backup,omitempty"` // move: where the original went, relative to the root
	// Content is what a write put in the file: the unit files systemd
	// reads at boot, before the volume is mounted, are small text.
	Content string      `json:"content,omitempty"`
	State   ActionState `json:"state"` // pending, done or undoing
}

// readJournal reads the journal under root; a missing journal is empty.
func readJournal(root string) (*Journal, error) {
	p := filepath.Join(root, JournalFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &Journal{Schema: JournalSchema}, nil
	}
	if err != nil {
		return nil, err
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if j.Schema != JournalSchema {
		return nil, fmt.Errorf("%s: schema %q, want %q", p, j.Schema, JournalSchema)
	}
	for _, a := range j.Actions {
		if err := checkRel(a.Path); err != nil {
			return nil, fmt.Errorf("%s: action %s: %w", p, a.Op, err)
		}
		switch a.Op {
		case OpMkdir, OpLink, OpWrite:
		case OpMove:
			if err := checkRel(a.Backup); err != nil || !under(a.Backup, BackupDir) {
				return nil, fmt.Errorf("%s: move %s: backup %q is not under %s", p, a.Path, a.Backup, BackupDir)
			}
		default:
			return nil, fmt.Errorf("%s: unknown action %q", p, a.Op)
		}
		switch a.State {
		case StatePending, StateDone, StateUndoing:
		default:
			return nil, fmt.Errorf("%s: %s %s: unknown state %q", p, a.Op, a.Path, a.State)
		}
	}
	return &j, nil
}

// save writes the journal atomically and durably: a temporary file,
// fsync, rename over the journal, fsync of the directory. An empty
// journal with no image removes the file.
func (j *Journal) save(root string) error {
	dir := filepath.Join(root, StateDir)
	p := filepath.Join(root, JournalFile)
	if j.Image == nil && len(j.Actions) == 0 {
		err := os.Remove(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return syncDir(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if j.Actions == nil {
		j.Actions = []Action{}
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	// A fixed temporary name: the next run removes one a killed run left.
	if err := writeFileAtomic(p, p+".tmp", append(b, '\n'), 0o644, nil); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// find returns the index of the action op on path, or -1.
func (j *Journal) find(op Op, path string) int {
	for i, a := range j.Actions {
		if a.Op == op && a.Path == path {
			return i
		}
	}
	return -1
}

// fsync is false only in tests that crash a run hundreds of times.
var fsync = true

// syncDir makes a directory's entries durable.
func syncDir(dir string) error {
	if !fsync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("%s: fsync: %w", dir, err)
	}
	return nil
}

// writeFileAtomic replaces the file p with data: a temporary file beside
// it (tmp, or a fresh name when tmp is ""), synced, given mode and (as
// root) the owner of the file it replaces (old, nil if none), then renamed
// over p and the directory synced. On an error p is as it was.
func writeFileAtomic(p, tmp string, data []byte, mode fs.FileMode, old fs.FileInfo) error {
	var f *os.File
	var err error
	if tmp == "" {
		f, err = os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".olimage-*")
	} else {
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	}
	if err != nil {
		// Name the file being written, not the temporary one.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &fs.PathError{Op: "write", Path: p, Err: err}
	}
	tmp = f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode) // whatever the umask
	}
	if err == nil && old != nil {
		if uid, gid, ok := fileOwner(old); ok && os.Geteuid() == 0 {
			err = f.Chown(uid, gid)
		}
	}
	if err == nil && fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", p, err)
	}
	return syncDir(filepath.Dir(p))
}

// fileOwner returns the owner of a file as Lstat found it.
func fileOwner(fi fs.FileInfo) (uid, gid int, ok bool) {
	if st, isStat := fi.Sys().(*syscall.Stat_t); isStat {
		return int(st.Uid), int(st.Gid), true
	}
	return 0, 0, false
}
