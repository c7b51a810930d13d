package tree

import (
	"fmt"
	"path"
	"strings"
)

// The paths a role declares on the VM's root disk, outside the volume:
// state directories its services write, which activation makes, and
// secrets the VM supplies, which activation checks. roles refuses a bad
// one where it is declared, activate where a manifest names it, by the
// same rules.

// StateRoots are where state paths may be: the places Debian and the FHS
// keep what services write. Anywhere else (/etc, /opt, a home directory,
// the volume itself) is refused, from a role and from a manifest alike.
var StateRoots = []string{"var/lib", "var/cache", "var/log", "var/spool", "srv"}

// CheckStatePath checks p, relative to the root, as a state path.
func CheckStatePath(p string) error {
	if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("state path %q: want a clean absolute path such as /var/lib/postgresql/15/main", "/"+p)
	}
	if under(p, "var/lib/olimage") {
		return fmt.Errorf("state path /%s: olimage keeps its own state there", p)
	}
	for _, r := range StateRoots {
		if strings.HasPrefix(p, r+"/") {
			return nil
		}
	}
	return fmt.Errorf("state path /%s: want a path below /%s", p, strings.Join(StateRoots, "/, /")+"/")
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

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
