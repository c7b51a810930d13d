package tree

import (
	"testing"
	"unsafe"
)

// An entry of a million-entry tree keeps its rarely set fields behind one
// pointer: the common entry must not grow back past this.
func TestEntrySize(t *testing.T) {
	if got, want := unsafe.Sizeof(Entry{}), uintptr(136); got > want {
		t.Errorf("Entry is %d bytes, want at most %d", got, want)
	}
}

// Copies of an entry share its rare fields until one of them is set: a
// setter on the copy leaves the original as it was.
func TestRareCopy(t *testing.T) {
	a := (&Entry{Type: File}).WithPath("a")
	a.SetXattrs([]Xattr{{Name: "user.a", Value: []byte("1")}})
	a.SetRules("fleet.yaml:3", "")
	a.SetLinkKey("k")
	b := *a
	b.SetXattrs(nil)
	b.SetRules("", "fleet.yaml:4")
	b.SetShadowed([]string{"base"})
	b.SetData([]BlockRun{{Start: 1, Count: 2}}, true)
	if len(a.Xattrs()) != 1 || a.OwnerRule() != "fleet.yaml:3" || a.ModeRule() != "" || a.Shadowed() != nil || a.LinkKey() != "k" {
		t.Errorf("original changed with its copy: xattrs %v, rules %q %q, shadowed %v, link key %q",
			a.Xattrs(), a.OwnerRule(), a.ModeRule(), a.Shadowed(), a.LinkKey())
	}
	if _, ok := a.Data(); ok {
		t.Error("original got the copy's data runs")
	}
	if runs, ok := b.Data(); !ok || len(runs) != 1 || b.Xattrs() != nil || b.OwnerRule() != "" || b.ModeRule() != "fleet.yaml:4" || b.LinkKey() != "k" {
		t.Errorf("copy: data %v %v, xattrs %v, rules %q %q, link key %q", runs, ok, b.Xattrs(), b.OwnerRule(), b.ModeRule(), b.LinkKey())
	}
}

// An entry whose rare fields are all cleared again holds no rare value,
// and entries that carry nothing rare but the same rule provenance share
// one: a rule over a million files costs one value.
func TestRareShared(t *testing.T) {
	e := (&Entry{}).WithPath("a")
	e.SetXattrs([]Xattr{{Name: "user.a"}})
	e.SetData(nil, true)
	e.SetXattrs(nil)
	e.SetData(nil, false)
	if e.rare != nil {
		t.Errorf("entry with no rare field set holds %+v", *e.rare)
	}
	a, b := (&Entry{}).WithPath("a"), (&Entry{}).WithPath("b")
	a.SetRules("roles/x.yaml:7", "roles/x.yaml:9")
	b.SetRules("roles/x.yaml:7", "")
	b.SetRules("roles/x.yaml:7", "roles/x.yaml:9")
	if a.rare == nil || a.rare != b.rare {
		t.Errorf("entries with the same rules hold %p and %p, want one shared value", a.rare, b.rare)
	}
	b.SetLinkKey("k")
	if a.LinkKey() != "" || b.OwnerRule() != "roles/x.yaml:7" {
		t.Errorf("after a link key on b: a's link key %q, b's owner rule %q", a.LinkKey(), b.OwnerRule())
	}
	b.SetRules("", "")
	if a.OwnerRule() != "roles/x.yaml:7" || b.OwnerRule() != "" || b.LinkKey() != "k" {
		t.Errorf("after clearing b's rules: a's owner rule %q, b's %q, b's link key %q", a.OwnerRule(), b.OwnerRule(), b.LinkKey())
	}
}

// Entries with the same owner and group names share one value, and a
// copy's names change without its original's.
func TestNames(t *testing.T) {
	a, b := (&Entry{}).WithPath("a"), (&Entry{}).WithPath("b")
	a.SetNames("app", "web")
	b.SetNames("app", "web")
	if a.origin == nil || a.origin != b.origin || a.Owner() != "app" || a.Group() != "web" {
		t.Errorf("names %p %p (%q %q), want one shared value app web", a.origin, b.origin, a.Owner(), a.Group())
	}
	c := *a
	c.SetNames("root", "web")
	if a.Owner() != "app" || c.Owner() != "root" || c.Group() != "web" {
		t.Errorf("after c.SetNames: a %q, c %q %q", a.Owner(), c.Owner(), c.Group())
	}
	c.SetOverlay("base")
	if a.Overlay() != "" || c.Overlay() != "base" || c.Owner() != "root" {
		t.Errorf("after c.SetOverlay: a's overlay %q, c's %q, c's owner %q", a.Overlay(), c.Overlay(), c.Owner())
	}
	c.SetNames("", "")
	c.SetOverlay("")
	if c.origin != nil || c.Owner() != "" || c.Group() != "" {
		t.Errorf("after clearing: %p %q %q", c.origin, c.Owner(), c.Group())
	}
}
