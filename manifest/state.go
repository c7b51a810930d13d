package manifest

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// StatePath is a directory a role's services write to, declared by the
// role: it is never in the image. Activation creates it on the root disk,
// with this owner and mode, when it is missing, and never moves, empties
// or removes it.
type StatePath struct {
	Path  string `json:"path"` // on the root file system, relative to /: var/lib/postgresql/15/main
	Owner string `json:"owner,omitempty"`
	Group string `json:"group,omitempty"`
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Mode  string `json:"mode"` // octal, four digits
}

// OwnerGroup is "owner:group", each by name where the manifest gives one,
// else by number.
func (s StatePath) OwnerGroup() string {
	nameOr := func(name string, id uint32) string {
		if name != "" {
			return name
		}
		return strconv.FormatUint(uint64(id), 10)
	}
	return nameOr(s.Owner, s.UID) + ":" + nameOr(s.Group, s.GID)
}

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

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }
