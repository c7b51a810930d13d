package ext4

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/tree"
)

// memContent is file content held in memory, for tests.
type memContent []byte

func (m memContent) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(m)), nil }

// genContent is content made on the fly: n bytes of a pattern, with zero
// ranges, so big and sparse files cost no memory.
type genContent struct {
	size  int64
	seed  byte
	zeros [][2]int64 // [start, end) byte ranges that read as zero
}

func (g *genContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(io.NewSectionReader(g, 0, g.size)), nil
}

func (g *genContent) ReadAt(p []byte, off int64) (int, error) {
	if off >= g.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), g.size-off))
	for i := 0; i < n; i++ {
		o := off + int64(i)
		p[i] = byte(o*7+o>>12) ^ g.seed | 1
	}
	for _, z := range g.zeros {
		s, e := max(z[0], off), min(z[1], off+int64(n))
		if s < e {
			clear(p[s-off : e-off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func digestOf(t testing.TB, c tree.Content) (int64, tree.Digest) {
	t.Helper()
	r, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatal(err)
	}
	var d tree.Digest
	h.Sum(d[:0])
	return n, d
}

// wantDigest reports an error on t unless the file at p, the entry name
// read back from an image, has the SHA-256 digest.
func wantDigest(t testing.TB, name, p string, digest tree.Digest) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil || !bytes.Equal(h.Sum(nil), digest[:]) {
		t.Errorf("%s: content differs (%v)", name, err)
	}
}

// file makes a regular file entry with its size and digest filled in.
func file(t testing.TB, path string, mode uint32, c tree.Content) *tree.Entry {
	n, d := digestOf(t, c)
	return (&tree.Entry{Type: tree.File, Mode: mode, Size: n, Digest: d, Content: c}).WithPath(path)
}

func dir(path string, mode uint32) *tree.Entry {
	return (&tree.Entry{Type: tree.Dir, Mode: mode}).WithPath(path)
}

func symlink(path, target string) *tree.Entry {
	return (&tree.Entry{Type: tree.Symlink, Mode: 0o777, Target: target}).WithPath(path)
}

func hardlink(path, target string) *tree.Entry {
	return (&tree.Entry{Type: tree.Hardlink, Target: target}).WithPath(path)
}

func newTree(t testing.TB, entries ...*tree.Entry) *tree.Tree {
	t.Helper()
	tr, err := tree.New(entries)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func testOptions() Options {
	return Options{
		Label:    "olimage-test",
		UUID:     [16]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10},
		HashSeed: [16]byte{0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55},
		Time:     1700000000,
		Journal:  true,
		Headroom: 1 << 20,
	}
}

// writeImage plans and writes tr to a file in a temp dir.
func writeImage(t testing.TB, tr *tree.Tree, o Options) (string, *Layout) {
	t.Helper()
	l, err := Plan(tr, o)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	img := filepath.Join(t.TempDir(), "test.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	n, err := l.WriteTo(f)
	if err != nil {
		f.Close()
		t.Fatalf("WriteTo: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if n != l.Size() {
		t.Fatalf("WriteTo wrote %d bytes, Size is %d", n, l.Size())
	}
	if fi, err := os.Stat(img); err != nil || fi.Size() != l.Size() {
		t.Fatalf("image file is %v bytes (%v), want %d", fi.Size(), err, l.Size())
	}
	return img, l
}

// debugfs runs one debugfs request against img.
func debugfs(t testing.TB, img, req string) string {
	t.Helper()
	out, err := exec.Command(testenv.Tool(t, "debugfs"), "-R", req, img).Output()
	if err != nil {
		t.Fatalf("debugfs -R %q: %v", req, err)
	}
	return string(out)
}

// statInfo is what debugfs stat says about one inode.
type statInfo struct {
	ino, links, uid, gid uint64
	typ                  string
	mode                 uint64
	size                 uint64
	flags                uint64
	fastLink             string
	times                []string
	raw                  string
}

var (
	statInodeRE = regexp.MustCompile(`Inode: (\d+)\s+Type: (\S+)\s+Mode:\s+(\d+)\s+Flags: 0x([0-9a-f]+)`)
	statUserRE  = regexp.MustCompile(`User:\s+(\d+)\s+Group:\s+(\d+)\s+.*Size: (\d+)`)
	statLinksRE = regexp.MustCompile(`Links: (\d+)`)
	statFastRE  = regexp.MustCompile(`Fast link dest: "(.*)"`)
	statTimeRE  = regexp.MustCompile(`(?m)^\s*(?:c|a|m|cr)time: (0x[0-9a-f]+:[0-9a-f]+)`)
)

func atou(t testing.TB, s string, base int) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// debugfsBatch runs requests in one debugfs and returns each one's output.
func debugfsBatch(t testing.TB, img string, reqs []string) []string {
	t.Helper()
	cmds := filepath.Join(t.TempDir(), "cmds")
	if err := os.WriteFile(cmds, []byte(strings.Join(reqs, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testenv.Tool(t, "debugfs"), "-f", cmds, img).Output()
	if err != nil {
		t.Fatalf("debugfs -f: %v", err)
	}
	parts := strings.Split(string(out), "debugfs: ")
	if len(parts) != len(reqs)+1 {
		t.Fatalf("debugfs: %d outputs for %d requests", len(parts)-1, len(reqs))
	}
	res := make([]string, len(reqs))
	for i, p := range parts[1:] {
		if !strings.HasPrefix(p, reqs[i]) {
			t.Fatalf("debugfs output %d is for %q, want %q", i, p, reqs[i])
		}
		res[i] = strings.TrimPrefix(p, reqs[i])
	}
	return res
}

func parseStat(t testing.TB, s string) statInfo {
	t.Helper()
	m := statInodeRE.FindStringSubmatch(s)
	u := statUserRE.FindStringSubmatch(s)
	k := statLinksRE.FindStringSubmatch(s)
	if m == nil || u == nil || k == nil {
		t.Fatalf("cannot parse debugfs stat output:\n%s", s)
	}
	si := statInfo{ino: atou(t, m[1], 10), typ: m[2], mode: atou(t, m[3], 8), flags: atou(t, m[4], 16),
		uid: atou(t, u[1], 10), gid: atou(t, u[2], 10), size: atou(t, u[3], 10), links: atou(t, k[1], 10), raw: s}
	if f := statFastRE.FindStringSubmatch(s); f != nil {
		si.fastLink = f[1]
	}
	for _, tm := range statTimeRE.FindAllStringSubmatch(s, -1) {
		si.times = append(si.times, tm[1])
	}
	return si
}

var eaRE = regexp.MustCompile(`(?m)^\s*(\S+) \((\d+)\)(?: = (.*))?$`)

// verify checks an image against its tree: e2fsck clean, features, and
// every entry's type, mode, owner, size, links, times, content, link
// target and xattrs as debugfs sees them.
func verify(t testing.TB, img string, tr *tree.Tree, o Options) {
	t.Helper()
	testenv.Fsck(t, img)
	out, err := exec.Command(testenv.Tool(t, "dumpe2fs"), "-h", img).Output()
	if err != nil {
		t.Fatalf("dumpe2fs -h: %v", err)
	}
	hdr := string(out)
	for _, line := range []string{
		"Filesystem volume name:   " + o.Label,
		"Filesystem UUID:          " + uuidString(o.UUID),
		"Directory Hash Seed:      " + uuidString(o.HashSeed),
		"Filesystem state:         clean",
		"Default directory hash:   half_md4",
		"Filesystem flags:         signed_directory_hash",
		"Inode size:\t          256",
		"Block size:               4096",
	} {
		if !strings.Contains(hdr, strings.ReplaceAll(line, "\\t", "\t")) {
			t.Errorf("dumpe2fs -h lacks %q:\n%s", line, hdr)
		}
	}
	want := "resize_inode ext_attr dir_index filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum"
	for _, f := range strings.Fields(want) {
		if !regexp.MustCompile(`Filesystem features:.*\b` + f + `\b`).MatchString(hdr) {
			t.Errorf("feature %s missing:\n%s", f, hdr)
		}
	}
	if o.Journal != strings.Contains(hdr, "has_journal") {
		t.Errorf("has_journal: want %v", o.Journal)
	}

	var reqs []string
	reqs = append(reqs, "stat /", "stat /lost+found")
	for _, e := range tr.Entries {
		reqs = append(reqs, "stat \"/"+e.Path()+"\"")
		if len(e.Xattrs()) > 0 {
			reqs = append(reqs, "ea_list \"/"+e.Path()+"\"")
		}
	}
	outs := debugfsBatch(t, img, reqs)
	tm := fmt.Sprintf("0x%08x:%08x", uint32(o.Time), uint32(o.Time>>32)&3)
	root := parseStat(t, outs[0])
	rootMode := o.RootMode
	if rootMode == 0 {
		rootMode = 0o755
	}
	if root.ino != 2 || root.typ != "directory" || root.mode != uint64(rootMode) || root.uid != uint64(o.RootUID) || root.gid != uint64(o.RootGID) {
		t.Errorf("root: got %+v", root)
	}
	if lpf := parseStat(t, outs[1]); lpf.ino != 11 || lpf.typ != "directory" {
		t.Errorf("lost+found: got inode %d type %s", lpf.ino, lpf.typ)
	}
	outs = outs[2:]
	inos := map[string]uint64{}
	k := 0
	for _, e := range tr.Entries {
		inos[e.Path()] = parseStat(t, outs[k]).ino
		k++
		if len(e.Xattrs()) > 0 {
			k++
		}
	}
	links := tr.Links()
	subdirs := map[string]uint64{}
	for _, e := range tr.Entries {
		if e.Type == tree.Dir {
			subdirs[tree.Parent(e.Path())]++
		}
	}
	for _, e := range tr.Entries {
		si := parseStat(t, outs[0])
		outs = outs[1:]
		for _, x := range si.times {
			if x != tm {
				t.Errorf("%s: time %s, want %s", e.Path(), x, tm)
			}
		}
		p := e
		if e.Type == tree.Hardlink {
			p = tr.Get(e.Target)
			if si.ino != inos[e.Target] {
				t.Errorf("%s: inode %d, want %d (hard link to %s)", e.Path(), si.ino, inos[e.Target], e.Target)
			}
		}
		if si.mode != uint64(p.Mode) || si.uid != uint64(p.UID) || si.gid != uint64(p.GID) {
			t.Errorf("%s: mode %o uid %d gid %d, want %o %d %d", e.Path(), si.mode, si.uid, si.gid, p.Mode, p.UID, p.GID)
		}
		switch p.Type {
		case tree.File:
			if si.typ != "regular" || si.size != uint64(p.Size) || si.links != uint64(links[p.Path()]) {
				t.Errorf("%s: type %s size %d links %d, want regular %d %d", e.Path(), si.typ, si.size, si.links, p.Size, links[p.Path()])
			}
		case tree.Dir:
			if si.typ != "directory" || si.links != 2+subdirs[p.Path()] {
				t.Errorf("%s: type %s links %d, want directory %d", e.Path(), si.typ, si.links, 2+subdirs[p.Path()])
			}
		case tree.Symlink:
			if si.typ != "symlink" || si.size != uint64(len(p.Target)) {
				t.Errorf("%s: type %s size %d, want symlink %d", e.Path(), si.typ, si.size, len(p.Target))
			}
			if len(p.Target) < 60 && si.fastLink != p.Target {
				t.Errorf("%s: fast link %q, want %q", e.Path(), si.fastLink, p.Target)
			}
		}
		if len(e.Xattrs()) > 0 {
			got := map[string]string{}
			for _, m := range eaRE.FindAllStringSubmatch(outs[0], -1) {
				got[m[1]] = m[2]
			}
			outs = outs[1:]
			for _, x := range p.Xattrs() {
				if got[x.Name] != strconv.Itoa(len(x.Value)) {
					t.Errorf("%s: xattr %s has %s bytes, want %d", e.Path(), x.Name, got[x.Name], len(x.Value))
				}
			}
			if len(got) != len(p.Xattrs()) {
				t.Errorf("%s: %d xattrs, want %d: %v", e.Path(), len(got), len(p.Xattrs()), got)
			}
		}
	}

	// Content and link targets through rdump.
	dump := filepath.Join(t.TempDir(), "rdump")
	if err := os.Mkdir(dump, 0o755); err != nil {
		t.Fatal(err)
	}
	debugfs(t, img, "rdump / "+dump)
	for _, e := range tr.Entries {
		p := filepath.Join(dump, filepath.FromSlash(e.Path()))
		switch e.Type {
		case tree.File, tree.Hardlink:
			pe := e
			if e.Type == tree.Hardlink {
				pe = tr.Get(e.Target)
			}
			wantDigest(t, e.Path(), p, pe.Digest)
		case tree.Symlink:
			if got, err := os.Readlink(p); err != nil || got != e.Target {
				t.Errorf("%s: link target %q (%v), want %q", e.Path(), got, err, e.Target)
			}
		}
	}
}

// keep copies img to $OLIMAGE_TEST_KEEP/<test name>.img, for debugging.
func keep(t testing.TB, img string) {
	d := os.Getenv("OLIMAGE_TEST_KEEP")
	if d == "" {
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + ".img"
	if out, err := exec.Command("cp", "--sparse=always", img, filepath.Join(d, name)).CombinedOutput(); err != nil {
		t.Fatalf("keep: %v %s", err, out)
	}
}

func uuidString(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
