package manifest

import (
	"fmt"
	"path"
	"strings"
)

// SecretPath is a file a role's services need that holds a secret: it is
// never in the image. The VM supplies it on the root disk, and activation
// refuses to go ahead until it is there with this owner and mode.
type SecretPath struct {
	Path  string `json:"path"` // on the root file system, relative to /: etc/openlibrary/secrets.yml
	Owner string `json:"owner,omitempty"`
	Group string `json:"group,omitempty"`
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Mode  string `json:"mode"` // octal, four digits
}

// CheckSecretPath checks p, relative to the root, as a secret's path: a
// clean path below etc/, where activation links files one by one and so
// leaves room for the VM's own (below opt/ whole directories are links
// into the volume), and outside olimage's own etc/olimage.
func CheckSecretPath(p string) error {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("secret path %q: want a clean path such as etc/openlibrary/secrets.yml", p)
	}
	if !strings.HasPrefix(p, "etc/") {
		return fmt.Errorf("secret path %s: want a path below etc/, where the VM keeps files beside the volume's", p)
	}
	if under(p, "etc/olimage") {
		return fmt.Errorf("secret path %s: olimage keeps its own configuration there", p)
	}
	return nil
}
