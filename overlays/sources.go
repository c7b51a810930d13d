package overlays

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/internetarchive/olimage/glob"
	"github.com/internetarchive/olimage/image"
	"github.com/internetarchive/olimage/internal/tarread"
	"github.com/internetarchive/olimage/internal/trace"
	"github.com/internetarchive/olimage/policy"
	"github.com/internetarchive/olimage/roles"
	"github.com/internetarchive/olimage/tree"
)

// ErrUnsafe marks an archive or directory entry that could write outside
// the volume or smuggle in something a data volume must not hold.
var ErrUnsafe = errors.New("unsafe entry")

// maxName is the longest file name ext4 stores.
const maxName = 255

// maxPath is the longest path olimage takes from a source, Linux's
// PATH_MAX: a longer one could not be opened on the VM, and reading
// one of hundreds of kilobytes costs time in every later step.
const maxPath = 4096

// ErrOutside marks a source that lies outside the fleet directory, which
// the fleet has not allowed (sources: {allow_outside: [...]}).
var ErrOutside = errors.New("source outside the fleet directory")

// reader turns overlay sources into layers.
type reader struct {
	ctx       context.Context
	fleet     *roles.Fleet
	spool     *spool                  // created on first tar member
	roots     []*dirRoot              // of directory sources, open until close
	fleetReal string                  // the fleet directory, symlinks resolved; once known
	tmpdir    string                  // where the spool goes; "" for $TMPDIR
	archives  []*os.File              // plain tar archives, read again for content
	tarBuf    []byte                  // copy buffer for members of plain archives
	tarScan   policy.Scanner          // scans members of plain archives as they are hashed
	shared    *Shared                 // reads dir and tar sources once per run; or nil
	images    []*image.File           // of deploy histories, open until close
	deploys   map[string]*serviceBins // bins placed, by service
	history   History                 // reads the images of deploy histories
	slab      []tree.Entry            // where base takes entries from
	paths     tree.Paths              // sets the paths of base's entries
	root      *tree.Entry             // what base copies: root's owner, the epoch, the overlay

	listed func(path string) // tests: called between listing a file and reading it
}

func (r *reader) close() error {
	var errs []error
	if r.spool != nil {
		errs = append(errs, r.spool.Close())
	}
	for _, d := range r.roots {
		errs = append(errs, d.close())
	}
	r.roots = nil
	for _, f := range r.archives {
		errs = append(errs, f.Close())
	}
	r.archives = nil
	for _, img := range r.images {
		errs = append(errs, img.Close())
	}
	r.images = nil
	return errors.Join(errs...)
}

// checkPlace refuses a source that lies outside the fleet directory once
// symlinks are resolved (dir: /etc/ssh, ../../etc/apt, a link to /), unless
// a sources: allow_outside glob of the fleet matches where it lies: the
// fleet's files say what goes into an image, not whatever the build host
// has.
func (r *reader) checkPlace(src string) error {
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return nil // reading it says what is missing
	}
	if real, err = filepath.Abs(real); err != nil {
		return err
	}
	if r.fleetReal == "" {
		d, err := filepath.EvalSymlinks(r.fleet.Dir)
		if err == nil {
			d, err = filepath.Abs(d)
		}
		if err != nil {
			return fmt.Errorf("fleet directory: %w", err)
		}
		r.fleetReal = d
	}
	if rel, err := filepath.Rel(r.fleetReal, real); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil
	}
	for _, g := range r.fleet.Sources.AllowOutside {
		pat := g.Pattern
		if !path.IsAbs(pat) {
			pat = path.Join(filepath.ToSlash(r.fleetReal), pat)
		}
		if glob.Match(pat, filepath.ToSlash(real)) {
			return nil
		}
	}
	where := ""
	if real != src {
		where = " (it resolves to " + real + ")"
	}
	return fmt.Errorf("%s: %w %s%s; every source lies in the fleet directory unless %s allows it (sources: {allow_outside: [%q]})",
		src, ErrOutside, r.fleetReal, where, roles.FleetFile, filepath.ToSlash(real))
}

// root entry metadata shared by every source.
// Entries come from slabs of entrySlab: one allocation for many entries
// rather than one each, which the collector would have to track.
func (r *reader) base(p string, t tree.Type, mode uint32, overlay string) *tree.Entry {
	if len(r.slab) == 0 {
		r.slab = make([]tree.Entry, entrySlab)
	}
	if r.root == nil || r.root.Overlay() != overlay {
		// A reader reads one overlay after another: the template changes
		// with the overlay, not with every entry.
		r.root = &tree.Entry{UID: r.fleet.Owners["root"], GID: r.fleet.Groups["root"], ModTime: r.fleet.Epoch}
		r.root.SetNames("root", "root")
		r.root.SetOverlay(overlay)
	}
	e := &r.slab[0]
	r.slab = r.slab[1:]
	*e = *r.root
	r.paths.Set(e, p)
	e.Type, e.Mode = t, mode
	return e
}

// entrySlab is how many entries a slab holds: as many as fit in 32 KiB,
// the largest size the Go allocator has a class for (a larger slab is
// rounded up to whole 8 KiB pages, the rest of the last one unused), and
// small enough that a few entries still in use do not keep much else
// alive.
const entrySlab = 32 << 10 / int(unsafe.Sizeof(tree.Entry{}))

// read returns the layer of overlay o.
func (r *reader) read(o *roles.Overlay) (*layer, error) {
	start := time.Now()
	l, err := r.readKind(o)
	if err == nil {
		var n int64
		for _, e := range l.sorted() {
			n += e.Size
		}
		what := string(o.Kind)
		if o.Source != "" {
			what += " " + o.Source
		}
		trace.Notef(r.ctx, "%s: overlay %s (%s): %d entries, %d bytes, %s", o.Pos, o.Name, what, l.len(), n, time.Since(start).Round(time.Millisecond))
	}
	return l, err
}

func (r *reader) readKind(o *roles.Overlay) (*layer, error) {
	if o.Kind != roles.FilesOverlay {
		if err := r.checkPlace(o.Source); err != nil {
			return nil, err
		}
	}
	if r.shared != nil && (o.Kind == roles.DirOverlay || o.Kind == roles.TarOverlay) {
		return r.shared.layer(o)
	}
	switch o.Kind {
	case roles.DirOverlay:
		return r.readDir(o.Source, o.Name)
	case roles.TarOverlay:
		return r.readTar(o.Source, o.Name)
	case roles.FilesOverlay:
		return r.readInline(o)
	case roles.DeployOverlay:
		return r.readDeploy(o)
	}
	return nil, fmt.Errorf("overlay %q: unknown kind %q", o.Name, o.Kind)
}

// readDir reads a directory source. Symlinks are recorded, never followed,
// so nothing outside the directory is read. Host owners and modes are not
// carried over (they depend on the checkout, the umask and the user), only
// whether a file is executable.
func (r *reader) readDir(root, overlay string) (*layer, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", root)
	}
	// The source itself may be a symlink to a directory: WalkDir would not
	// enter it, so resolve it. Symlinks inside it are never followed.
	if li, err := os.Lstat(root); err == nil && li.Mode()&fs.ModeSymlink != 0 {
		if root, err = filepath.EvalSymlinks(root); err != nil {
			return nil, err
		}
	}
	// Files are read later, relative to the directory held open here (see
	// openListed).
	dr, err := openDirRoot(root)
	if err != nil {
		return nil, err
	}
	r.roots = append(r.roots, dr)
	var rootID syscall.Stat_t
	if err := syscall.Fstat(dr.fd, &rootID); err != nil {
		return nil, &os.PathError{Op: "stat", Path: root, Err: err}
	}
	l := newLayer()
	h := newHasher(r.ctx, 4*runtime.GOMAXPROCS(0))
	d := r.fleet.Defaults
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if p == root {
			// The walk must list the directory that files are opened in.
			info, err := de.Info()
			if err != nil {
				return err
			}
			if st, ok := info.Sys().(*syscall.Stat_t); !ok || st.Dev != rootID.Dev || st.Ino != rootID.Ino {
				return fmt.Errorf("%s: %w while being opened", root, ErrChanged)
			}
			return nil
		}
		// The entry keeps none of it (tree.Entry.SetPath copies), so a
		// slice of p is enough.
		rel := filepath.ToSlash(p[len(root)+1:])
		if err := checkName(rel); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		var e *tree.Entry
		switch m := info.Mode(); {
		case m.IsDir():
			e = r.base(rel, tree.Dir, d.DirMode, overlay)
		case m.IsRegular():
			mode := d.FileMode
			if m.Perm()&0o111 != 0 {
				mode = d.ExecMode
			}
			// A setuid or setgid bit is kept, so that merging refuses it
			// unless a rule allows it; dropping it would hide it.
			if m&fs.ModeSetuid != 0 {
				mode |= tree.ModeSetuid
			}
			if m&fs.ModeSetgid != 0 {
				mode |= tree.ModeSetgid
			}
			e = r.base(rel, tree.File, mode, overlay)
			e.Size = info.Size()
			st, ok := info.Sys().(*syscall.Stat_t)
			if !ok {
				return fmt.Errorf("%s: no device and inode number", p)
			}
			dir, name := e.PathParts()
			e.Content = fileContent{dr, dir, name, e.Size, fileID{uint64(st.Dev), uint64(st.Ino)}}
			if st.Nlink > 1 {
				// Names of one inode become one file and hard links to it,
				// as in a tar archive; tree.Normalize picks the file.
				e.SetLinkKey(fmt.Sprintf("%s:%d:%d", overlay, st.Dev, st.Ino))
			}
			if r.listed != nil {
				r.listed(p)
			}
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e = r.base(rel, tree.Symlink, 0o777, overlay)
			e.Target = target
		default:
			return fmt.Errorf("%s: %w: %v (a data volume holds files, directories and symlinks only)", p, ErrUnsafe, m.Type())
		}
		xs, err := dirXattrs(p, d.Xattrs)
		if err != nil {
			return err
		}
		e.SetXattrs(xs)
		l.add(e)
		if e.Type == tree.File {
			// Queued once the walk is done with e: the hasher edits its
			// rarely set fields too (tree.Entry.SetData).
			h.add(e)
		}
		return nil
	})
	if herr := h.wait(); err == nil {
		err = herr
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// checkName refuses names ext4 cannot hold, and names with control
// characters: a newline in a name would let it pass for two lines in
// every listing that prints it.
func checkName(p string) error {
	if strings.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("%w: name contains a NUL byte", ErrUnsafe)
	}
	if len(p) > maxPath {
		return fmt.Errorf("%w: path is %d bytes; olimage allows %d (PATH_MAX)", ErrUnsafe, len(p), maxPath)
	}
	// One pass, for every member of an archive: a control character is
	// one byte in UTF-8, whose multi-byte runes are all bytes of 0x80
	// and more.
	long, start := -1, 0 // the first component longer than ext4 allows
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '/':
			if long < 0 && i-start > maxName {
				long = start
			}
			start = i + 1
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("%w: name contains the control character %q", ErrUnsafe, c)
		}
	}
	if long < 0 && len(p)-start > maxName {
		long = start
	}
	if long >= 0 {
		c, _, _ := strings.Cut(p[long:], "/")
		return fmt.Errorf("%w: name %.40q... is %d bytes; ext4 allows %d", ErrUnsafe, c, len(c), maxName)
	}
	return nil
}

// shortName quotes an entry name for an error, cut short: a name can be
// as long as an archive allows, and an error that repeats a megabyte of
// it says less, not more.
func shortName(s string) string {
	if len(s) > 512 {
		return strconv.Quote(s[:512]) + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return strconv.Quote(s)
}

// checkXattr refuses extended attributes whose meaning is the build's to
// decide, not an archive's: trusted.* configures the kernel and overlayfs
// (only root may read or set them), security.selinux is a label the VM's
// own policy assigns. security.capability (file capabilities) is kept
// here and refused after merging unless a rule allows it, as setuid bits
// are.
func checkXattr(name string) error {
	switch {
	case strings.HasPrefix(name, "trusted."):
		return fmt.Errorf("extended attribute %q: trusted.* attributes are refused (they steer the kernel, not the files)", name)
	case name == "security.selinux":
		return fmt.Errorf("extended attribute %q: SELinux labels come from the VM's policy, not from the image", name)
	}
	return nil
}

// tailReader counts the bytes read through it and how many of the last
// ones were zeros.
type tailReader struct {
	r     io.Reader
	n     int64
	zeros int64
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	if z := trailingZeros(p[:n]); z < n {
		t.zeros = int64(z)
	} else {
		t.zeros += int64(n)
	}
	return n, err
}

// trailingZeros counts the zero bytes b ends with, by whole blocks and
// eight at a time: the data block of a one-byte member is 511 of them,
// and a million such members counted byte by byte took a twentieth of a
// validate.
func trailingZeros(b []byte) int {
	i := len(b)
	// Whole blocks compared as memory first: a member's padding is read
	// alone, and is all zeros (184 ns for a padding and a header against
	// 257-327 ns eight bytes at a time, at load 5).
	for i >= len(zeros) && bytes.Equal(b[i-len(zeros):i], zeros[:]) {
		i -= len(zeros)
	}
	if i < len(zeros) && bytes.Equal(b[:i], zeros[:i]) {
		return len(b)
	}
	for i >= 8 && binary.LittleEndian.Uint64(b[i-8:]) == 0 {
		i -= 8
	}
	for i > 0 && b[i-1] == 0 {
		i--
	}
	return len(b) - i
}

// ErrTooLarge marks an archive that unpacks to more than the fleet allows:
// a decompression bomb, or limits to raise in olimage.yaml.
var ErrTooLarge = errors.New("archive unpacks too large")

// minRatioCheck is roles.MinRatioCheck; tests lower it.
var minRatioCheck int64 = roles.MinRatioCheck

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// bombGuard ends the unpacked stream of an archive once it passes the
// fleet's limits on size and on ratio to the bytes of the archive read
// so far (packed). The error is sticky: archive/tar drops an error that
// comes with a full read, so the next read says it again.
type bombGuard struct {
	ctx      context.Context // checked on every read: a member can be gigabytes
	r        io.Reader
	packed   *countReader
	n        int64
	maxBytes int64
	maxRatio float64
	minRatio int64 // unpacked bytes before the ratio counts
	err      error
}

func (g *bombGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if err := g.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	switch {
	case g.n > g.maxBytes:
		g.err = fmt.Errorf("%w: more than %s unpacked; the fleet allows %s (raise sources: {max_unpacked: ...} in %s if it is no bomb)",
			ErrTooLarge, bytesString(g.maxBytes), bytesString(g.maxBytes), roles.FleetFile)
	case g.n > g.minRatio && float64(g.n) > g.maxRatio*float64(max(g.packed.n, 1)):
		g.err = fmt.Errorf("%w: %s unpacked from %s of the archive, more than %g times; the fleet allows %g (raise sources: {max_ratio: ...} in %s if it is no bomb)",
			ErrTooLarge, bytesString(g.n), bytesString(g.packed.n), g.maxRatio, g.maxRatio, roles.FleetFile)
	}
	return n, err
}

func bytesString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// decompress sniffs the compression of an archive from its first bytes
// rather than trusting its name. kind is "gzip", "zstd" or "" (plain).
func decompress(f io.Reader) (_ io.Reader, done func(), kind string, err error) {
	br := bufio.NewReaderSize(f, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, "", fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, "gzip", nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, nil, "", fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, "zstd", nil
	}
	return br, func() {}, "", nil
}

// readTar reads a tar archive, plain or compressed with gzip or zstd.
// Members are digested on the way. Members of a compressed archive are
// spooled; those of a plain one are read again from the archive, held
// open until the reader closes, so it needs no room in $TMPDIR.
func (r *reader) readTar(name, overlay string) (_ *layer, err error) {
	f, err := openArchive(name)
	if err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
		}
	}()
	packed := &countReader{r: f}
	zr, done, kind, err := decompress(packed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer done()
	plain := kind == ""
	if plain {
		keep = true
		r.archives = append(r.archives, f)
	}
	lim := r.fleet.Sources
	if lim.MaxUnpacked <= 0 {
		lim.MaxUnpacked = roles.DefaultMaxUnpacked
	}
	if lim.MaxRatio <= 0 {
		lim.MaxRatio = roles.DefaultMaxRatio
	}
	guard := &bombGuard{ctx: r.ctx, r: zr, packed: packed, maxBytes: lim.MaxUnpacked, maxRatio: lim.MaxRatio, minRatio: minRatioCheck}
	if !plain {
		if r.spool == nil {
			if r.spool, err = newSpool(r.tmpdir); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			trace.Notef(r.ctx, "%s: spooling compressed members in %s", name, r.spool.dir)
		}
		if err := r.spool.reserve(name, unpackedSize(f, kind)); err != nil {
			return nil, err
		}
	}
	// archive/tar also reports a quiet EOF where an archive was cut off
	// at a block boundary; the end-of-archive marker tells the two apart.
	tail := &tailReader{r: guard}
	a := &tarArchive{r: r, name: name, overlay: overlay, f: f, plain: plain,
		tail: tail, tr: tarread.NewReader(tail), l: newLayer(), symlinks: map[string]bool{}}
	if !plain {
		a.queue = newSpoolQueue(a)
	}
	err = a.readMembers()
	if a.queue != nil {
		// An error spooling is an earlier member's than any of reading.
		if qerr := a.queue.close(); qerr != nil {
			err = qerr
		}
	}
	if err != nil {
		return nil, err
	}
	if !plain {
		if err := r.spool.flush(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		r.spool.release()
	}
	// Read a little past the end-of-archive marker, as far as tar's
	// padding to a record goes and further, so that gzip and zstd verify
	// their checksums where the stream ends there: a corrupt trailer is
	// an error. Whatever lies beyond is never unpacked: a few megabytes
	// of archive can hide a hundred gigabytes of zeros after the marker.
	if _, err := io.CopyN(io.Discard, guard, 1<<20); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: after the last entry: %w", name, err)
	}
	return a.l, nil
}

// tarArchive is one tar source being read into a layer.
type tarArchive struct {
	r       *reader
	name    string // the archive's file
	overlay string
	f       *os.File
	pa      *plainArchive // of a plain archive, once it has a member with content
	plain   bool          // uncompressed: members are read from f in place, not spooled
	tail    *tailReader
	tr      *tarread.Reader // its headers are valid until the next member
	queue   *spoolQueue     // of a compressed archive: spools small members
	l       *layer
	// symlinks holds the archive's symlinks so far: no later member may
	// lie below one.
	symlinks map[string]bool
}

// unsafe is the error for a member that is refused.
func (a *tarArchive) unsafe(hdr *tar.Header, format string, args ...any) error {
	// A detail from checkName says "unsafe entry" already; say it once.
	msg := strings.Replace(fmt.Sprintf(format, args...), ErrUnsafe.Error()+": ", "", 1)
	return fmt.Errorf("%s: entry %s: %w: %s", a.name, shortName(hdr.Name), ErrUnsafe, msg)
}

// readMembers reads every member up to the end-of-archive marker into a.l.
func (a *tarArchive) readMembers() error {
	var end int64 // where the last member's data ends, padded to a block
	for i := 0; ; i++ {
		if err := a.r.ctx.Err(); err != nil {
			return err
		}
		hdr, err := a.tr.Next()
		if err == io.EOF {
			if a.tail.n < end+512 || a.tail.zeros < 512 {
				return fmt.Errorf("%s: entry %d: archive truncated (no end-of-archive marker)", a.name, i)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: entry %d: %w", a.name, i, err)
		}
		end = a.tail.n
		if hdr.Typeflag == tar.TypeReg { // archive/tar reports old-style regular files (RegA) as Reg
			end += (hdr.Size + 511) &^ 511
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		// archive/tar expands sparse members into their full size, so a tiny
		// archive could spool terabytes of zeros.
		if hdr.Typeflag == tar.TypeGNUSparse || hdr.PAXRecords["GNU.sparse.major"] != "" || hdr.PAXRecords["GNU.sparse.map"] != "" || hdr.PAXRecords["GNU.sparse.size"] != "" || hdr.PAXRecords["GNU.sparse.realsize"] != "" {
			return a.unsafe(hdr, "sparse member (re-create the archive without --sparse)")
		}
		p, err := archivePath(hdr.Name)
		if err != nil {
			return a.unsafe(hdr, "%v", err)
		}
		if p == "" {
			continue // "./" itself: the volume root is not an entry
		}
		for i := strings.LastIndexByte(p, '/'); i > 0 && len(a.symlinks) > 0; i = strings.LastIndexByte(p[:i], '/') {
			if d := p[:i]; a.symlinks[d] {
				return a.unsafe(hdr, "lies below %q, a symlink in the same archive", d)
			}
		}
		e, err := a.member(hdr, p)
		if err != nil {
			return err
		}
		a.l.add(e)
	}
}

// member makes the entry for the member hdr at path p, reading its content.
func (a *tarArchive) member(hdr *tar.Header, p string) (*tree.Entry, error) {
	mode := uint32(hdr.Mode) & tree.ModeMask
	// The member's own mtime is not kept: the image stamps every inode
	// with the epoch (base does), and the manifest says what the image
	// holds.
	e := a.r.base(p, 0, mode, a.overlay)
	if hdr.Typeflag == tar.TypeSymlink {
		mode = 0o777 // Linux ignores a symlink's mode; keep it uniform
	}
	e.Mode = mode
	var xs []tree.Xattr
	for k, v := range hdr.PAXRecords {
		if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			xs = append(xs, tree.Xattr{Name: x, Value: []byte(v)})
		}
	}
	sortXattrs(xs)
	e.SetXattrs(xs)
	for _, x := range xs {
		if err := checkXattr(x.Name); err != nil {
			return nil, a.unsafe(hdr, "%v", err)
		}
	}
	delete(a.symlinks, p)
	switch hdr.Typeflag {
	case tar.TypeReg:
		e.Type = tree.File
		if a.queue != nil && hdr.Size <= maxQueued {
			if err := a.queue.add(a.tr, hdr.Name, hdr.Size, e); err != nil {
				return nil, err
			}
			break
		}
		if err := a.settle(); err != nil {
			return nil, err
		}
		if err := a.content(hdr, e); err != nil {
			return nil, fmt.Errorf("%s: entry %s: %w", a.name, shortName(hdr.Name), err)
		}
	case tar.TypeDir:
		e.Type = tree.Dir
	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return nil, a.unsafe(hdr, "symlink with an empty target")
		}
		if err := checkName(hdr.Linkname); err != nil {
			return nil, a.unsafe(hdr, "symlink target: %v", err)
		}
		e.Type, e.Target = tree.Symlink, hdr.Linkname
		a.symlinks[p] = true
	case tar.TypeLink:
		t, err := archivePath(hdr.Linkname)
		if err != nil {
			return nil, a.unsafe(hdr, "hard link target: %v", err)
		}
		if err := a.settle(); err != nil { // the target's sums are copied
			return nil, err
		}
		prev := a.l.get(t)
		if prev == nil || (prev.Type != tree.File && prev.Type != tree.Hardlink) {
			return nil, a.unsafe(hdr, "hard link to %q, which is not a regular file earlier in the archive", hdr.Linkname)
		}
		if prev.LinkKey() == "" {
			prev.SetLinkKey(a.overlay + ":" + t)
		}
		*e = *prev
		a.r.paths.Set(e, p)
		e.Type, e.Target = tree.Hardlink, t
	case tar.TypeChar, tar.TypeBlock:
		return nil, a.unsafe(hdr, "device node")
	case tar.TypeFifo:
		return nil, a.unsafe(hdr, "fifo")
	default:
		return nil, a.unsafe(hdr, "unsupported type %q", hdr.Typeflag)
	}
	return e, nil
}

// settle waits until the members queued to be spooled are.
func (a *tarArchive) settle() error {
	if a.queue == nil {
		return nil
	}
	return a.queue.wait()
}

// content digests a regular member's data and sets where e's content is:
// in place in a plain archive, else in the spool.
func (a *tarArchive) content(hdr *tar.Header, e *tree.Entry) error {
	r := a.r
	if a.plain {
		// tail.n is where the member's data starts in the archive.
		off := a.tail.n
		if r.tarBuf == nil {
			r.tarBuf = make([]byte, policy.ScanLimit)
		}
		sm, hits, err := hashScan(a.tr, hdr.Size, r.tarBuf, &r.tarScan)
		if err != nil {
			return err
		}
		sm.set(e)
		if a.pa == nil {
			a.pa = &plainArchive{f: a.f}
		}
		if len(hits) > 0 {
			if a.pa.hits == nil {
				a.pa.hits = map[int64][]policy.Hit{}
			}
			a.pa.hits[off] = hits
		}
		e.Content = archiveContent{a.pa, off, sm.size}
		return nil
	}
	off, sm, err := r.spool.write(a.tr, hdr.Size)
	if err != nil {
		return err
	}
	sm.set(e)
	e.Content = spoolContent{r.spool, off, sm.size}
	return nil
}

// openArchive opens the archive at name, which must be a regular file:
// /dev/zero would be read forever, and a FIFO would block the build
// until someone writes to it. It is checked before it is opened (opening
// a device can have effects), and again once open, without blocking, in
// case it was replaced in between.
func openArchive(name string) (*os.File, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file (%s); an archive source must be a file", name, ErrUnsafe, fileType(fi.Mode()))
	}
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w: %w: not a regular file (%s)", name, ErrUnsafe, ErrChanged, fileType(fi.Mode()))
	}
	return f, nil
}

func fileType(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return m.Type().String()
}

// archivePath cleans a member name and refuses any that could leave the
// volume root.
func archivePath(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path")
	}
	if err := checkName(name); err != nil {
		return "", err
	}
	// "./a/b", as tar -C dir . names members, is "a/b": path.Clean would
	// say so, but in a copy, one for each member of a large archive.
	// Whether the rest is clean (no empty, "." or ".." component) is
	// found in the same pass as "..".
	rest, clean := strings.CutPrefix(name, "./")
	if !clean {
		rest = name
	}
	clean = clean && rest != ""
	start := 0
	for i := 0; i <= len(rest); i++ {
		if i < len(rest) && rest[i] != '/' {
			continue
		}
		switch rest[start:i] {
		case "..":
			return "", errors.New("path contains \"..\"")
		case "", ".":
			clean = false
		}
		start = i + 1
	}
	if clean {
		return rest, nil
	}
	if p := path.Clean(name); p != "." {
		return p, nil
	}
	return "", nil
}

func sortXattrs(x []tree.Xattr) {
	for i := 1; i < len(x); i++ {
		for j := i; j > 0 && x[j].Name < x[j-1].Name; j-- {
			x[j], x[j-1] = x[j-1], x[j]
		}
	}
}

// readInline turns YAML entries into a layer.
func (r *reader) readInline(o *roles.Overlay) (*layer, error) {
	l := newLayer()
	d := r.fleet.Defaults
	for _, f := range o.Files {
		var e *tree.Entry
		switch f.Type {
		case tree.File:
			e = r.base(f.Path, tree.File, d.FileMode, o.Name)
			sm, _ := hashReader(strings.NewReader(f.Content), int64(len(f.Content)), nil)
			sm.set(e)
			e.Content = bytesContent(f.Content)
		case tree.Dir:
			e = r.base(f.Path, tree.Dir, d.DirMode, o.Name)
		case tree.Symlink:
			e = r.base(f.Path, tree.Symlink, 0o777, o.Name)
			e.Target = f.Target
		}
		if f.Mode != nil {
			e.Mode = *f.Mode
		}
		var ownerRule, modeRule string
		owner, group := e.Owner(), e.Group()
		if f.Owner != "" {
			e.UID, owner = r.fleet.Owners[f.Owner], f.Owner
			ownerRule = r.fleet.Where(f.Pos)
		}
		if f.Group != "" {
			e.GID, group = r.fleet.Groups[f.Group], f.Group
			ownerRule = r.fleet.Where(f.Pos)
		}
		e.SetNames(owner, group)
		if f.Mode != nil {
			modeRule = r.fleet.Where(f.Pos)
		}
		e.SetRules(ownerRule, modeRule)
		if l.get(e.Path()) != nil {
			return nil, fmt.Errorf("%s: %s: declared twice in overlay %q", f.Pos, f.Path, o.Name)
		}
		l.add(e)
	}
	return l, nil
}

// readDeploy reads a deploy's source and places it in its service's
// deploy history, with the active link pointed at it.
func (r *reader) readDeploy(o *roles.Overlay) (*layer, error) {
	fi, err := os.Stat(o.Source)
	if err != nil {
		return nil, err
	}
	var src *layer
	if fi.IsDir() {
		src, err = r.readDir(o.Source, o.Name)
	} else {
		src, err = r.readTar(o.Source, o.Name)
	}
	if err != nil {
		return nil, err
	}
	dp := o.Deploy
	bin := dp.Revision
	if bin == "" {
		bin = src.digest()[:12]
	}
	prefix := path.Join(tree.DeploysDir, dp.Service, bin)
	l := newLayer()
	l.add(r.base(prefix, tree.Dir, r.fleet.Defaults.DirMode, o.Name))
	for _, e := range src.sorted() {
		e.SetPath(prefix + "/" + e.Path())
		if e.Type == tree.Hardlink {
			e.Target = prefix + "/" + e.Target
		}
		l.add(e)
	}
	for _, w := range src.whiteouts {
		l.whiteouts = append(l.whiteouts, prefix+"/"+w)
	}
	for _, w := range src.opaque {
		l.opaque = append(l.opaque, prefix+"/"+w)
	}
	if dp.Active {
		link := r.base(dp.Link, tree.Symlink, 0o777, o.Name)
		link.Target = relative(tree.Parent(dp.Link), prefix)
		l.add(link)
	}
	var hist []tree.DeployBin
	if dp.History != nil {
		if hist, err = r.readHistory(o, bin, l); err != nil {
			return nil, err
		}
	}
	r.noteDeploy(dp.Service, bin, dp.Active, hist)
	return l, nil
}

// relative returns the path from directory from to target, both relative
// to the volume root, so links work wherever the volume is mounted.
func relative(from, target string) string {
	var f, t []string
	if from != "" {
		f = strings.Split(from, "/")
	}
	t = strings.Split(target, "/")
	i := 0
	for i < len(f) && i < len(t) && f[i] == t[i] {
		i++
	}
	var parts []string
	for range f[i:] {
		parts = append(parts, "..")
	}
	parts = append(parts, t[i:]...)
	return strings.Join(parts, "/")
}
