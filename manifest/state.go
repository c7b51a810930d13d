package manifest

import "strconv"

// StatePath is a directory a role's services write to, declared by the
// role: it is never in the image. Activation creates it on the root disk,
// with this owner and mode, when it is missing, and never moves, empties
// or removes it. Its path is one tree.CheckStatePath accepts.
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
