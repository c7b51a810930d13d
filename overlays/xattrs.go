package overlays

import (
	"errors"
	"fmt"
	"path"

	"github.com/internetarchive/olimage/tree"
)

// ErrXattr is returned for an extended attribute of a directory source
// that the fleet does not say to keep.
var ErrXattr = errors.New("extended attribute not kept")

// hostLabel is the attribute every file on an SELinux host has: the host's
// label, not part of the source, so it is left out without a word.
const hostLabel = "security.selinux"

// dirXattrs returns the extended attributes of the file at p (not
// following a symlink) that keep names, sorted. An attribute keep does not
// name is an error rather than silently dropped, unless keep names some
// (then the list is the fleet's choice) or it is the host's SELinux label.
func dirXattrs(p string, keep []string) ([]tree.Xattr, error) {
	names, err := listXattrs(p)
	if err != nil {
		return nil, fmt.Errorf("%s: listing xattrs: %w", p, err)
	}
	var out []tree.Xattr
	for _, name := range names {
		kept := false
		for _, k := range keep {
			if ok, _ := path.Match(k, name); ok {
				kept = true
				break
			}
		}
		if !kept {
			if len(keep) == 0 && name != hostLabel {
				return nil, fmt.Errorf("%s: %w: %s (name the xattrs directory sources keep in olimage.yaml, defaults: {xattrs: [%s]}, or remove it)", p, ErrXattr, name, name)
			}
			continue
		}
		v, err := getXattr(p, name)
		if err != nil {
			return nil, fmt.Errorf("%s: xattr %s: %w", p, name, err)
		}
		out = append(out, tree.Xattr{Name: name, Value: v})
	}
	sortXattrs(out)
	return out, nil
}
