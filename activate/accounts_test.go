package activate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/manifest"
)

// nameOwners gives every entry of the manifest at dir owner and group
// names, as a build records them from the fleet: opt/ entries belong to
// openlibrary, etc/ entries to root and group www-data.
func nameOwners(t *testing.T, dir string) {
	t.Helper()
	editManifest(t, dir, func(m *manifest.Manifest) {
		for i := range m.Entries {
			e := &m.Entries[i]
			if strings.HasPrefix(e.Path, "opt/") {
				e.Owner, e.Group = "openlibrary", "openlibrary"
			} else {
				e.Owner, e.Group = "root", "www-data"
			}
		}
	})
}

// TestAccounts: the image's files use ids for names that the root's
// /etc/passwd and /etc/group must give the same ids; every mismatch is
// listed, and only --force-accounts activates anyway.
func TestAccounts(t *testing.T) {
	uid, gid := os.Geteuid(), os.Getegid()
	root, _ := newRoot(t, v1)
	nameOwners(t, filepath.Join(root, "1"))
	writeSpec(t, root, spec{
		"etc/passwd": fmt.Sprintf("file:root:x:%d:%d:root:/root:/bin/sh\nopenlibrary:x:%d:%d::/:/usr/sbin/nologin\n", uid, gid, uid+104, gid),
		"etc/group":  fmt.Sprintf("file:root:x:%d:\nopenlibrary:x:%d:\n", gid, gid+7),
	})
	before := snapshot(t, root)
	want := []string{
		fmt.Sprintf("user openlibrary: uid %d in %s/etc/passwd; the image's files use uid %d: accounts differ", uid+104, root, uid),
		fmt.Sprintf("group openlibrary: gid %d in %s/etc/group; the image's files use gid %d: accounts differ", gid+7, root, gid),
		fmt.Sprintf("group www-data: not in %s/etc/group; the image's files use gid %d: accounts differ", root, gid),
	}
	for _, o := range []Options{{}, {DryRun: true}, {Force: true}} {
		o.Root = root
		_, err := Activate(ctx, o)
		if !errors.Is(err, ErrAccounts) || err.Error() != strings.Join(want, "\n") {
			t.Fatalf("activate %+v: got\n%v\nwant\n%s", o, err, strings.Join(want, "\n"))
		}
	}
	check(t, root, before, "after a refused activate")

	activate(t, root, Options{ForceAccounts: true})
	deactivate(t, root)

	writeSpec(t, root, spec{
		"etc/passwd": fmt.Sprintf("file:root:x:%d:%d:root:/root:/bin/sh\nopenlibrary:x:%d:%d::/:/usr/sbin/nologin\n", uid, gid, uid, gid),
		"etc/group":  fmt.Sprintf("file:root:x:%d:\nopenlibrary:x:%d:\nwww-data:x:%d:\n", gid, gid, gid),
	})
	activate(t, root, Options{})
}

func TestWriteSysusers(t *testing.T) {
	a := NewAccounts()
	for _, x := range []struct {
		o    string
		uid  uint32
		g    string
		gid  uint32
		fail bool
	}{
		{"root", 0, "root", 0, false},
		{"postgres", 105, "postgres", 105, false},
		{"solr", 8983, "www-data", 33, false},
		{"", 1234, "", 1234, false}, // ids with no name: nothing to create
		{"postgres", 104, "", 0, true},
	} {
		if err := a.Add(x.o, x.uid, x.g, x.gid); (err != nil) != x.fail {
			t.Errorf("Add(%q, %d, %q, %d): %v", x.o, x.uid, x.g, x.gid, err)
		}
	}
	var b bytes.Buffer
	if err := WriteSysusers(&b, "role x\nu evil 0", a); err != nil {
		t.Fatal(err)
	}
	want := "# role x?u evil 0\n" +
		"# Install as /etc/sysusers.d/olimage-ROLE.conf and run systemd-sysusers\n# before olimage activate, which compares these ids with the system's.\n" +
		"g postgres 105\ng www-data 33\nu postgres 105:105 - - -\nu solr 8983 - - -\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	a.Users["bad name"] = 5
	b.Reset()
	if err := WriteSysusers(&b, "x", a); err == nil || b.Len() != 0 {
		t.Errorf("a name with a space: %v, wrote %q", err, b.String())
	}
}
