package roles

import (
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/internetarchive/olimage/tree"
)

// Secret is a file with a secret that the role's services need: never in
// the image, supplied by the VM on its root disk with this owner and mode
// (Path: etc/openlibrary/secrets.yml).
type Secret OwnedPath

// DefaultSecretMode is a secret's mode unless the role says otherwise:
// readable by its owner only.
const DefaultSecretMode = 0o600

// secrets reads a role's secrets: after those it inherits.
func (f *Fleet) secrets(raw []rawOwned, file string, parent *yaml.Node, inherited []Secret) ([]Secret, error) {
	return declared(f, ownedKind{key: "secrets", noun: "secret", what: "secret", mode: DefaultSecretMode, check: func(p string) (string, error) {
		p = strings.TrimPrefix(p, "/")
		return p, tree.CheckSecretPath(p)
	}}, raw, file, parent, inherited)
}
