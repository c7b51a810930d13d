package activate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/internetarchive/olimage/glob"
	"github.com/internetarchive/olimage/manifest"
)

// PolicyFile is the VM's own list of sensitive paths an image of a role
// may link, relative to the root. Nothing in an image can change it.
const PolicyFile = "etc/olimage/policy.yaml"

// maxPolicySize bounds the policy file and /etc/passwd as read here.
const maxPolicySize = 1 << 20

// sensitive are the paths whose replacement hands over the machine:
// accounts, credentials, privilege and login configuration. A plan that
// links one is refused unless the policy file allows it for the role.
var sensitive = []string{
	"/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-",
	"/etc/passwd", "/etc/passwd-", "/etc/group", "/etc/group-",
	"/etc/sudoers*", "/etc/sudoers.d/**",
	"/etc/ssh/**", "/etc/pam.d/**", "/etc/security/**",
	"/etc/olimage/**",
	"/root/**", "/home/**",
}

// checkConfined refuses every link of the plan but those an image may
// make: its own top-level opt/ entries and paths of its etc/ tree, each
// to the same path in the volume, naming each link refused.
func checkConfined(m *manifest.Manifest) error {
	own := make(map[string]bool, len(m.Entries))
	for _, e := range m.Entries {
		own[e.Path] = true
	}
	var errs []error
	for _, l := range m.Activation.Links {
		parts := strings.Split(l.Path, "/")
		switch {
		case l.Target != l.Path:
			errs = append(errs, fmt.Errorf("/%s: %w: links to %s in the volume; a link may only point to the same path in the volume", l.Path, ErrUnsafe, l.Target))
		case !(parts[0] == "opt" && len(parts) == 2 || parts[0] == "etc" && len(parts) >= 2):
			errs = append(errs, fmt.Errorf("/%s: %w: an image links only top-level /opt entries and paths under /etc", l.Path, ErrUnsafe))
		case !own[l.Target]:
			errs = append(errs, fmt.Errorf("/%s: %w: the image's manifest has no entry %s to link to", l.Path, ErrUnsafe, l.Target))
		}
	}
	return errors.Join(errs...)
}

// Policy is the VM's policy file: for each role (or "*", every role), the
// globs of sensitive paths its images may link. A glob is an absolute
// path whose components match as path.Match does, and "**" matches any
// number of components.
type Policy struct {
	Allow map[string][]string `yaml:"allow"`
}

// allows reports whether the policy lets an image of role link p.
func (pol *Policy) allows(role, p string) bool {
	if pol == nil {
		return false
	}
	for _, r := range []string{role, "*"} {
		for _, g := range pol.Allow[r] {
			if matchGlob(g, p) {
				return true
			}
		}
	}
	return false
}

// checkSensitive refuses the links of the plan to sensitive paths and to
// anything under a home directory that ROOT/etc/passwd names, unless the
// policy file allows them for the image's role. An unsafe or unreadable
// policy file refuses the whole plan.
func checkSensitive(root string, m *manifest.Manifest) error {
	paths := make([]string, len(m.Activation.Links))
	for i, l := range m.Activation.Links {
		paths[i] = l.Path
	}
	return refuseSensitive(root, m.Role, paths)
}

// refuseSensitive refuses links at the paths (relative to the root) that
// are sensitive or under a home directory, unless the policy file allows
// them for role.
func refuseSensitive(root, role string, paths []string) error {
	pol, err := ReadPolicy(root)
	if err != nil {
		return err
	}
	homes, err := homeDirs(root)
	if err != nil {
		return err
	}
	var errs []error
	for _, rel := range paths {
		p := "/" + rel
		why := ""
		for _, g := range sensitive {
			if matchGlob(g, p) {
				why = "a sensitive path"
				break
			}
		}
		for _, h := range homes {
			if p == h || strings.HasPrefix(p, h+"/") {
				why = "in the home directory " + h
				break
			}
		}
		if why != "" && !pol.allows(role, p) {
			errs = append(errs, fmt.Errorf("%s: %w: %s; /%s does not allow it for role %s", p, ErrUnsafe, why, PolicyFile, role))
		}
	}
	return errors.Join(errs...)
}

// ReadPolicy reads ROOT/etc/olimage/policy.yaml, nil if there is none. It
// must be a regular file owned by root and writable by no one else, in a
// directory of the same kind: a policy anyone could edit allows nothing.
func ReadPolicy(root string) (*Policy, error) {
	p := filepath.Join(root, PolicyFile)
	if _, err := os.Lstat(filepath.Dir(p)); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err := checkOwner(filepath.Dir(p)); err != nil {
		return nil, err
	}
	b, err := readSmall(root, PolicyFile, maxPolicySize, true)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pol Policy
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&pol); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	for role, globs := range pol.Allow {
		for _, g := range globs {
			if !path.IsAbs(g) {
				return nil, fmt.Errorf("%s: role %s: glob %q: want an absolute path such as /etc/ssh/sshd_config.d/*", p, role, g)
			}
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("%s: role %s: glob %q: %w", p, role, g, err)
			}
		}
	}
	return &pol, nil
}

// checkOwner refuses a file or directory that is a symlink, not owned by
// root, or writable by its group or others.
func checkOwner(p string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("%s: %w: a symlink; the policy must be a file of the root disk", p, ErrUnsafe)
	}
	if d := rootOnly(&st); d != "" {
		return fmt.Errorf("%s: %w: %s", p, ErrUnsafe, d)
	}
	return nil
}

// rootOnly says why a file of the VM's own configuration, as st
// describes it, could be changed by someone other than root; "" if it
// cannot.
func rootOnly(st *unix.Stat_t) string {
	switch {
	case st.Uid != 0:
		return fmt.Sprintf("owned by uid %d, want root", st.Uid)
	case st.Mode&0o022 != 0:
		return fmt.Sprintf("mode %04o is writable by group or others", st.Mode&0o7777)
	}
	return ""
}

// readSmall reads the regular file base/rel, following no symlink below
// base, and refusing more than limit bytes (a device or FIFO never ends,
// nor blocks); with owned, the file must also pass checkOwner's test, on
// the descriptor read.
func readSmall(base, rel string, limit int64, owned bool) ([]byte, error) {
	p := filepath.Join(base, rel)
	fd, err := unix.Open(base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: base, Err: err}
	}
	parts := strings.Split(rel, "/")
	for i, c := range parts {
		flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_DIRECTORY
		if i == len(parts)-1 {
			flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
		}
		next, err := unix.Openat(fd, c, flags, 0)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			if m, serr := lstatAt(fd, c); serr == nil && m&fs.ModeSymlink != 0 {
				t, _ := readlinkAt(fd, c)
				err = fmt.Errorf("%w: a symlink to %s; olimage reads it through no symlink", ErrUnsafe, t)
			}
		}
		unix.Close(fd)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: filepath.Join(base, strings.Join(parts[:i+1], "/")), Err: err}
		}
		fd = next
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, fmt.Errorf("%s: %w: not a regular file", p, ErrUnsafe)
	case st.Size > limit:
		return nil, fmt.Errorf("%s: %w: %d bytes, more than the %d allowed", p, ErrUnsafe, st.Size, limit)
	case owned && rootOnly(&st) != "":
		return nil, fmt.Errorf("%s: %w: %s", p, ErrUnsafe, rootOnly(&st))
	}
	// The size can grow after fstat: read one byte past the limit to see.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: more than the %d bytes allowed", p, ErrUnsafe, limit)
	}
	return b, nil
}

// homeDirs lists the home directories ROOT/etc/passwd names, but "/" and
// the conventional no-home paths, which hold no one's files.
func homeDirs(root string) ([]string, error) {
	b, err := readSmall(root, "etc/passwd", maxPolicySize, false)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var homes []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxPolicySize)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || !path.IsAbs(f[5]) {
			continue
		}
		h := path.Clean(f[5])
		switch h {
		case "/", "/nonexistent", "/var/empty", "/dev/null":
			continue
		}
		homes = append(homes, h)
	}
	slices.Sort(homes)
	return slices.Compact(homes), sc.Err()
}

// matchGlob matches the absolute path p against the absolute glob g.
func matchGlob(g, p string) bool {
	return glob.Match(strings.Trim(g, "/"), strings.Trim(p, "/"))
}

// ErrRoleChange is returned when the volume holds an image of another
// role than the active one: a machine does not change what it is by a
// disk being attached.
var ErrRoleChange = errors.New("another role")

// checkRole refuses to replace the active image by one of another role,
// unless asked to.
func checkRole(active, img *ImageRef, change bool) error {
	if active == nil || active.Role == img.Role || change {
		return nil
	}
	return fmt.Errorf("volume %s: %w: it holds an image of role %s, and %s is active on this machine", img.Volume, ErrRoleChange, img.Role, active.Role)
}
