package activate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// ErrSecrets marks a plan whose declared secrets the root disk does not
// hold as the role wants them.
var ErrSecrets = errors.New("secrets missing or wrong")

// SecretsDir holds the VM's own copies of the secrets a role declares,
// relative to the root: SecretsDir/ROLE/PATH for the secret at /PATH.
// Like the policy file, nothing in an image can change it.
const SecretsDir = "etc/olimage/secrets"

// SecretState is what a status found of a declared secret.
type SecretState string

// States of a declared secret in a status.
const (
	SecretOK       SecretState = "ok"       // there, or linked to the VM's copy, with its owner and mode
	SecretMissing  SecretState = "missing"  // neither at its path nor in SecretsDir
	SecretWrong    SecretState = "wrong"    // there, or the VM's copy, with another owner, mode or type
	SecretUnlinked SecretState = "unlinked" // only the VM's copy is there: activate links it
)

// SecretStatus is one declared secret as found on the root disk.
type SecretStatus struct {
	Path  string      `json:"path"`  // relative to the root
	Owner string      `json:"owner"` // user:group (uid:gid) it must have
	Mode  string      `json:"mode"`  // the mode it must have, four octal digits
	State SecretState `json:"state"` // ok, missing, wrong or unlinked
	// Link is the VM's copy, as seen on the VM, when the path is a link
	// to it or activate makes one.
	Link  string `json:"link,omitempty"`
	Found string `json:"found,omitempty"` // what is wrong
}

// problem says what is not in place, with what to do; "" if nothing is.
func (s SecretStatus) problem(role string) string {
	switch s.State {
	case SecretMissing:
		return fmt.Sprintf("secret /%s: missing; put it there or at %s (activate links it), owned by %s, mode %s", s.Path, hostSecretPath(role, s.Path), s.Owner, s.Mode)
	case SecretWrong:
		return fmt.Sprintf("secret /%s: %s", s.Path, s.Found)
	case SecretUnlinked:
		return fmt.Sprintf("secret /%s: missing; activate links it to %s", s.Path, s.Link)
	}
	return ""
}

// hostSecretPath is where the VM keeps its copy of the secret rel of role,
// as seen on the VM: the text of the link activate makes.
func hostSecretPath(role, rel string) string { return "/" + path.Join(SecretsDir, role, rel) }

// secretLinks checks, before anything changes, every secret the plan of
// m declares, and returns the links to make to the VM's copies of those
// not on the root disk. A secret on the root disk must be a regular file
// (so that what was checked is what a service opens) with the declared
// owner, group and mode; one that is not there is linked to
// SecretsDir/ROLE/PATH if that passes the same test. It refuses listing
// every secret missing or wrong, with where it could be put.
func secretLinks(root string, m *manifest.Manifest) ([]goal, error) {
	var errs []error
	var links []goal
	var paths []string
	seen := map[string]bool{}
	for _, s := range m.Activation.Secrets {
		if seen[s.Path] {
			errs = append(errs, fmt.Errorf("secret /%s: %w: declared twice", s.Path, ErrUnsafe))
			continue
		}
		seen[s.Path] = true
		st, err := lookSecret(root, m.Role, s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.State == SecretMissing || st.State == SecretWrong {
			errs = append(errs, fmt.Errorf("%s: %w", st.problem(m.Role), ErrSecrets))
			continue
		}
		if st.Link == "" {
			continue
		}
		for _, l := range m.Activation.Links {
			if under(s.Path, l.Path) || under(l.Path, s.Path) {
				errs = append(errs, fmt.Errorf("secret /%s: %w: the plan links /%s too", s.Path, ErrUnsafe, l.Path))
			}
		}
		links = append(links, goal{Path: s.Path, Target: st.Link})
		paths = append(paths, s.Path)
	}
	if len(paths) > 0 {
		// A link at a sensitive path hands it over to whoever wrote the
		// VM's copy: allowed only as the image's own links are.
		errs = append(errs, refuseSensitive(root, m.Role, paths))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return links, nil
}

// lookSecret finds the secret s of an image of role on the root disk: a
// regular file at its path, a link activate made to the VM's copy, or
// only the VM's copy. A declaration olimage refuses to act on is an error
// wrapping ErrUnsafe.
func lookSecret(root, role string, s manifest.SecretPath) (SecretStatus, error) {
	st := SecretStatus{Path: s.Path, Owner: fmt.Sprintf("%s:%s (%d:%d)", name(s.Owner, s.UID), name(s.Group, s.GID), s.UID, s.GID), Mode: s.Mode}
	if err := tree.CheckSecretPath(s.Path); err != nil {
		return st, fmt.Errorf("%w: %w", err, ErrUnsafe)
	}
	want, err := strconv.ParseUint(s.Mode, 8, 32)
	if err != nil || want > 0o7777 {
		return st, fmt.Errorf("secret /%s: mode %q: want four octal digits: %w", s.Path, s.Mode, ErrUnsafe)
	}
	if role == "" || role == "." || role == ".." || strings.ContainsAny(role, "/\x00") {
		return st, fmt.Errorf("secret /%s: role %q: %w: not a directory name under /%s", s.Path, role, ErrUnsafe, SecretsDir)
	}
	host := hostSecretPath(role, s.Path)
	p := filepath.Join(root, s.Path)
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		problem, missing := hostSecret(root, host, s, uint32(want))
		switch {
		case missing:
			st.State = SecretMissing
		case problem != "":
			st.State, st.Link, st.Found = SecretWrong, host, problem
		default:
			st.State, st.Link = SecretUnlinked, host
		}
		return st, nil
	case err != nil:
		return st, fmt.Errorf("secret /%s: %w", s.Path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		if t, _ := os.Readlink(p); t == host {
			st.Link = host
			problem, missing := hostSecret(root, host, s, uint32(want))
			if missing {
				problem = host + ": missing"
			}
			if problem != "" {
				st.State, st.Found = SecretWrong, "a link to the VM's copy; "+problem
				return st, nil
			}
			st.State = SecretOK
			return st, nil
		}
	}
	if !fi.Mode().IsRegular() {
		st.State, st.Found = SecretWrong, fmt.Sprintf("%s, want a regular file or a link to %s", describe(p, fi), host)
		return st, nil
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return st, fmt.Errorf("secret /%s: no owner known", s.Path)
	}
	st.State, st.Found = SecretOK, ownerMode(s, uint32(want), sys.Uid, sys.Gid, uint32(sys.Mode))
	if st.Found != "" {
		st.State = SecretWrong
	}
	return st, nil
}

// ownerMode says how a file of owner uid:gid and mode differs from the
// secret s, whose mode is want; "" if it does not.
func ownerMode(s manifest.SecretPath, want, uid, gid, mode uint32) string {
	var d []string
	if uid != s.UID || gid != s.GID {
		d = append(d, fmt.Sprintf("owned by %d:%d, want %s:%s (%d:%d)", uid, gid, name(s.Owner, s.UID), name(s.Group, s.GID), s.UID, s.GID))
	}
	if mode&0o7777 != want {
		d = append(d, fmt.Sprintf("mode %04o, want %s", mode&0o7777, s.Mode))
	}
	return strings.Join(d, "; ")
}

// hostSecret checks the VM's copy of the secret s, at host as seen on the
// VM (below SecretsDir): reached through no symlink, every directory from
// etc/olimage down owned by root, writable by no one else (a copy anyone
// could replace would hand the secret over) and searchable by the
// secret's owner, the file itself regular with the declared owner and
// mode, want. It says what is wrong,
// "" if nothing, or that there is no copy.
func hostSecret(root, host string, s manifest.SecretPath, want uint32) (problem string, missing bool) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Sprintf("%s: %v", root, err), false
	}
	defer func() { unix.Close(fd) }()
	parts := splitPath(host[1:])
	guarded := len(splitPath(PolicyFile)) - 1 // etc/olimage and below
	for i, c := range parts[:len(parts)-1] {
		at := "/" + strings.Join(parts[:i+1], "/")
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		switch {
		case errors.Is(err, unix.ENOENT):
			return "", true
		case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR):
			if m, serr := lstatAt(fd, c); serr == nil && m&fs.ModeSymlink != 0 {
				t, _ := readlinkAt(fd, c)
				return fmt.Sprintf("%s: a symlink to %s; olimage reads the VM's secrets through no symlink", at, t), false
			}
			return at + ": not a directory", false
		case err != nil:
			return fmt.Sprintf("%s: %v", at, err), false
		}
		unix.Close(fd)
		fd = next
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fmt.Sprintf("%s: %v", at, err), false
		}
		if i < guarded {
			continue
		}
		if d := rootOnly(&st); d != "" {
			return at + ": " + d, false
		}
		// A secret its service cannot reach is as good as missing.
		if s.UID != 0 && st.Mode&0o001 == 0 && (st.Gid != s.GID || st.Mode&0o010 == 0) {
			return fmt.Sprintf("%s: mode %04o: %s cannot reach the secret through it; want 0711 or 0755", at, st.Mode&0o7777, name(s.Owner, s.UID)), false
		}
	}
	last := parts[len(parts)-1]
	var st unix.Stat_t
	if err := unix.Fstatat(fd, last, &st, unix.AT_SYMLINK_NOFOLLOW); errors.Is(err, unix.ENOENT) {
		return "", true
	} else if err != nil {
		return fmt.Sprintf("%s: %v", host, err), false
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Sprintf("%s: %s, want a regular file", host, describeMode(modeOf(&st), func() string { t, _ := readlinkAt(fd, last); return t })), false
	}
	if d := ownerMode(s, want, st.Uid, st.Gid, uint32(st.Mode)); d != "" {
		return host + ": " + d, false
	}
	return "", false
}

func name(n string, id uint32) string {
	if n != "" {
		return n
	}
	return strconv.FormatUint(uint64(id), 10)
}
