package roles

import (
	"errors"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/internetarchive/olimage/manifest"
)

// Secret is a file with a secret that the role's services need: never in
// the image, supplied by the VM on its root disk with this owner and mode.
type Secret struct {
	Path  string // relative to the root: etc/openlibrary/secrets.yml
	Owner string
	Group string
	UID   uint32
	GID   uint32
	Mode  uint32
	Pos   Pos
}

type rawSecret struct {
	Path  string `yaml:"path"`
	Owner string `yaml:"owner"`
	Group string `yaml:"group"`
	Mode  string `yaml:"mode"`
}

// DefaultSecretMode is a secret's mode unless the role says otherwise:
// readable by its owner only.
const DefaultSecretMode = 0o600

// secrets reads a role's secrets: after those it inherits.
func (f *Fleet) secrets(raw []rawSecret, file string, parent *yaml.Node, inherited []Secret) ([]Secret, error) {
	var out []Secret
	var errs []error
	seen := map[string]Pos{}
	for _, s := range inherited {
		seen[s.Path] = s.Pos
	}
	lines := itemLines(parent, "secrets")
	for i, rs := range raw {
		pos := Pos{file, lineAt(lines, i)}
		s := Secret{Path: strings.TrimPrefix(rs.Path, "/"), Owner: rs.Owner, Group: rs.Group, Mode: DefaultSecretMode, Pos: pos}
		if err := manifest.CheckSecretPath(s.Path); err != nil {
			errs = append(errs, errorf(pos, "%v", err))
			continue
		}
		if prev, dup := seen[s.Path]; dup {
			errs = append(errs, errorf(pos, "secret /%s already declared at %s", s.Path, prev))
			continue
		}
		seen[s.Path] = pos
		var err error
		if s.Owner, s.Group, s.UID, s.GID, s.Mode, err = f.ownership(pos, "secret", rs.Owner, rs.Group, rs.Mode, s.Mode); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}
