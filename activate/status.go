package activate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/internetarchive/olimage/manifest"
)

// StatusSchema identifies the document `olimage status --json` prints.
const StatusSchema = "olimage.status/v1"

// LinkState is what a status found at a link's path.
type LinkState string

// States of a link in a status.
const (
	LinkOK       LinkState = "ok"       // the symlink olimage made is in place
	LinkMissing  LinkState = "missing"  // nothing at the path
	LinkWrong    LinkState = "wrong"    // something else at the path
	LinkInactive LinkState = "inactive" // the volume's plan names it, the journal does not
)

// Status is which image is active on a root, and whether its links are
// in place.
type Status struct {
	Schema  string       `json:"schema"`
	Root    string       `json:"root"`
	Image   *ImageRef    `json:"image"`  // the active image, nil if none
	Volume  *ImageRef    `json:"volume"` // the image on the volume asked about, nil if none
	Links   []LinkStatus `json:"links"`
	Pending int          `json:"pending"` // steps an interrupted run left unfinished
	// Deploys are the active links of deployed services on the root
	// disk, from the volume asked about.
	Deploys []DeployStatus `json:"deploys,omitempty"`
	// Secrets are the secrets the volume asked about declares, as found
	// on the root disk.
	Secrets  []SecretStatus `json:"secrets,omitempty"`
	Findings []string       `json:"findings"`
}

// LinkStatus is one link of a status.
type LinkStatus struct {
	Path   string    `json:"path"`   // relative to the root
	Target string    `json:"target"` // the symlink's text it should have
	State  LinkState `json:"state"`  // ok, missing, wrong or inactive
	Found  string    `json:"found,omitempty"`
	// File is true for a file activate writes (a unit file) rather than
	// a symlink; Target is empty then.
	File bool `json:"file,omitempty"`
}

// OK reports whether the status has no findings.
func (s *Status) OK() bool { return len(s.Findings) == 0 }

// ReadStatus reads the journal under opts.Root and checks every link it
// records. With opts.Volume set, it also checks that the volume mounted
// there is the active image, that every link of its plan is made and that
// every secret its role declares is in place.
func ReadStatus(opts Options) (*Status, error) {
	if err := opts.normalize(opts.Volume != ""); err != nil {
		return nil, err
	}
	j, err := loadJournal(opts.Root)
	if err != nil {
		return nil, err
	}
	s := &Status{Schema: StatusSchema, Root: opts.Root, Image: j.Image, Links: []LinkStatus{}, Findings: []string{}}
	if j.Image == nil {
		s.Findings = append(s.Findings, "no image is active")
	}
	journaled := map[string]string{}
	written := map[string]string{}
	for _, a := range j.Actions {
		if a.State != StateDone {
			s.Pending++
		}
		switch a.Op {
		case OpLink:
			journaled[a.Path] = a.Target
			ls := LinkStatus{Path: a.Path, Target: a.Target}
			ls.State, ls.Found = checkPlaced(opts.Root, a.Path, false, a.Target)
			s.Links = append(s.Links, ls)
		case OpWrite:
			written[a.Path] = a.Content
			ls := LinkStatus{Path: a.Path, File: true}
			ls.State, ls.Found = checkPlaced(opts.Root, a.Path, true, a.Content)
			s.Links = append(s.Links, ls)
		}
	}
	if running(opts.Root) {
		s.Findings = append(s.Findings, fmt.Sprintf("an olimage run is under way on %s: what follows may change; run status again when it ends", opts.Root))
	}
	if s.Pending > 0 || j.Running != "" {
		s.Findings = append(s.Findings, fmt.Sprintf("an interrupted %s left %d step(s) unfinished: run olimage activate or deactivate", orRun(j.Running), s.Pending))
	}
	if opts.Volume != "" {
		s.checkVolume(opts, j, journaled, written)
	}
	for _, l := range s.Links {
		switch l.State {
		case LinkMissing:
			if l.File {
				s.Findings = append(s.Findings, fmt.Sprintf("/%s: missing, want the file activate wrote", l.Path))
				continue
			}
			s.Findings = append(s.Findings, fmt.Sprintf("/%s: missing, want a symlink to %s", l.Path, l.Target))
		case LinkWrong:
			if l.File {
				s.Findings = append(s.Findings, fmt.Sprintf("/%s: %s, want the file activate wrote", l.Path, l.Found))
				continue
			}
			s.Findings = append(s.Findings, fmt.Sprintf("/%s: %s, want a symlink to %s", l.Path, l.Found, l.Target))
		case LinkInactive:
			if l.File {
				s.Findings = append(s.Findings, fmt.Sprintf("/%s: not activated (%s), the volume's plan writes it", l.Path, l.Found))
				continue
			}
			s.Findings = append(s.Findings, fmt.Sprintf("/%s: not activated (%s), the volume's plan links it to %s", l.Path, l.Found, l.Target))
		}
	}
	return s, nil
}

// checkVolume checks that the volume mounted at opts.Volume is the
// active image and that every link of its plan is made. Nothing mounted
// there, or no manifest olimage can read, is a finding: the links of the
// active image point at nothing.
func (s *Status) checkVolume(opts Options, j *Journal, journaled, written map[string]string) {
	m, err := ReadManifest(filepath.Join(opts.Root, opts.Volume))
	if errors.Is(err, fs.ErrNotExist) {
		s.Findings = append(s.Findings, fmt.Sprintf("nothing olimage built is mounted at %s: there is no %s", opts.Volume, path.Join(opts.Volume, manifest.Path)))
		return
	}
	if err != nil {
		s.Findings = append(s.Findings, fmt.Sprintf("volume %s: %v", opts.Volume, err))
		return
	}
	s.Volume = &ImageRef{Fleet: m.Fleet, FleetVersion: m.FleetVersion, Role: m.Role, Label: m.Label, UUID: m.UUID, Tree: m.TreeDigest, Volume: opts.Volume}
	if j.Image != nil && (j.Image.UUID != m.UUID || j.Image.Tree != m.TreeDigest || j.Image.Volume != opts.Volume) {
		s.Findings = append(s.Findings, fmt.Sprintf("the active image is %s %s at %s, the volume at %s holds %s %s", j.Image.Role, j.Image.UUID, j.Image.Volume, opts.Volume, m.Role, m.UUID))
	}
	if m.Activation == nil {
		return
	}
	if err := s.checkGoals(opts, j, m, journaled, written); err != nil {
		s.Findings = append(s.Findings, fmt.Sprintf("volume %s: %v", opts.Volume, err))
	}
	for _, sec := range m.Activation.Secrets {
		st, err := lookSecret(opts.Root, m.Role, sec)
		if err != nil {
			s.Findings = append(s.Findings, fmt.Sprintf("volume %s: %v", opts.Volume, err))
			continue
		}
		s.Secrets = append(s.Secrets, st)
		if p := st.problem(m.Role); p != "" {
			s.Findings = append(s.Findings, p)
		}
	}
}

// checkPlaced says whether root/rel is what activate placed there: with
// file, a regular file holding text; else a symlink whose text is text.
func checkPlaced(root, rel string, file bool, text string) (state LinkState, found string) {
	p := filepath.Join(root, rel)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return LinkMissing, "missing"
	}
	if err != nil {
		return LinkWrong, err.Error()
	}
	switch {
	case file && fi.Mode().IsRegular():
		if fileHolds(p, text) {
			return LinkOK, ""
		}
		return LinkWrong, "a regular file changed since"
	case !file && fi.Mode()&fs.ModeSymlink != 0:
		if t, err := os.Readlink(p); err == nil && t == text {
			return LinkOK, ""
		}
	}
	return LinkWrong, describe(p, fi)
}

func orRun(s string) string {
	if s == "" {
		return "run"
	}
	return s
}
