package activate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/tree"
)

// ErrAccounts is wrapped by the error of an activation whose image's
// files use user or group ids other than the root's accounts of the same
// names: a file of the image would belong to someone else on the VM.
var ErrAccounts = errors.New("accounts differ")

// Accounts are the users and groups, by name, that files use, with their
// ids.
type Accounts struct {
	Users  map[string]uint32
	Groups map[string]uint32
}

// NewAccounts returns empty Accounts.
func NewAccounts() *Accounts {
	return &Accounts{Users: map[string]uint32{}, Groups: map[string]uint32{}}
}

// Add records that a file is owned by user owner (uid) and group (gid);
// an empty name, as a tar member's id with no name in the fleet, is not
// recorded. A name seen before with another id is an error.
func (a *Accounts) Add(owner string, uid uint32, group string, gid uint32) error {
	for _, x := range []struct {
		kind string
		m    map[string]uint32
		name string
		id   uint32
	}{{"user", a.Users, owner, uid}, {"group", a.Groups, group, gid}} {
		if x.name == "" {
			continue
		}
		if old, ok := x.m[x.name]; ok && old != x.id {
			return fmt.Errorf("%s %s has two ids, %d and %d", x.kind, x.name, old, x.id)
		}
		x.m[x.name] = x.id
	}
	return nil
}

// ManifestAccounts collects the accounts the entries of a manifest use.
func ManifestAccounts(m *manifest.Manifest) (*Accounts, error) {
	a := NewAccounts()
	for _, e := range m.Entries {
		if err := a.Add(e.Owner, e.UID, e.Group, e.GID); err != nil {
			return nil, fmt.Errorf("%s: /%s: %w", manifest.Path, e.Path, err)
		}
	}
	return a, nil
}

// checkAccounts compares the accounts the image's files use with
// ROOT/etc/passwd and ROOT/etc/group, and refuses listing every account
// missing there or there with another id.
func checkAccounts(root string, m *manifest.Manifest) error {
	want, err := ManifestAccounts(m)
	if err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	var errs []error
	for _, f := range []struct {
		kind, file, id string
		want           map[string]uint32
	}{{"user", "etc/passwd", "uid", want.Users}, {"group", "etc/group", "gid", want.Groups}} {
		if len(f.want) == 0 {
			continue
		}
		have, err := readIDs(root, f.file)
		if err != nil {
			return err
		}
		p := filepath.Join(root, f.file)
		for _, name := range slices.Sorted(maps.Keys(f.want)) {
			id, ok := have[name]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s %s: not in %s; the image's files use %s %d: %w", f.kind, name, p, f.id, f.want[name], ErrAccounts))
			case id != f.want[name]:
				errs = append(errs, fmt.Errorf("%s %s: %s %d in %s; the image's files use %s %d: %w", f.kind, name, f.id, id, p, f.id, f.want[name], ErrAccounts))
			}
		}
	}
	return errors.Join(errs...)
}

// readIDs reads the names and ids (third field) of ROOT/etc/passwd or
// ROOT/etc/group; a missing file has none.
func readIDs(root, rel string) (map[string]uint32, error) {
	b, err := readSmall(root, rel, maxPolicySize, false)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]uint32{}, nil
	}
	if err != nil {
		return nil, err
	}
	ids := map[string]uint32{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxPolicySize)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		id, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			continue // not an account line olimage can compare
		}
		if _, ok := ids[f[0]]; !ok {
			ids[f[0]] = uint32(id) // the first line of a name is the one used
		}
	}
	return ids, sc.Err()
}

// WriteSysusers writes a sysusers.d(5) file that creates the accounts
// with their ids: groups first, then users, each sorted by name; a user
// whose name is also a group's gets it as its primary group. root, which
// every system has, is left out. A name systemd would refuse is an error,
// and nothing is written.
func WriteSysusers(w io.Writer, title string, a *Accounts) error {
	for _, m := range []map[string]uint32{a.Groups, a.Users} {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			if !safeAccount(name) {
				return fmt.Errorf("account name %q: want letters, digits, '_', '-' and '.', not first, at most 31", name)
			}
		}
	}
	var b strings.Builder
	// The title may name an image's role: no line of it may break out
	// of the comment.
	fmt.Fprintf(&b, "# %s\n", strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, title))
	b.WriteString("# Install as /etc/sysusers.d/olimage-ROLE.conf and run systemd-sysusers\n# before olimage activate, which compares these ids with the system's.\n")
	for _, name := range slices.Sorted(maps.Keys(a.Groups)) {
		if name == "root" {
			continue
		}
		fmt.Fprintf(&b, "g %s %d\n", name, a.Groups[name])
	}
	for _, name := range slices.Sorted(maps.Keys(a.Users)) {
		if name == "root" {
			continue
		}
		id := strconv.FormatUint(uint64(a.Users[name]), 10)
		if gid, ok := a.Groups[name]; ok {
			id += ":" + strconv.FormatUint(uint64(gid), 10)
		}
		fmt.Fprintf(&b, "u %s %s - - -\n", name, id)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// safeAccount reports whether name can be written into a sysusers.d line
// as it is: the characters systemd allows in user and group names.
func safeAccount(name string) bool {
	for i, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.')) {
			return false
		}
	}
	return name != "" && len(name) <= 31
}

// TreeAccounts collects the accounts the entries of a tree use.
func TreeAccounts(t *tree.Tree) (*Accounts, error) {
	a := NewAccounts()
	for _, e := range t.Entries {
		if err := a.Add(e.Owner(), e.UID, e.Group(), e.GID); err != nil {
			return nil, fmt.Errorf("/%s: %w", e.Path(), err)
		}
	}
	return a, nil
}
