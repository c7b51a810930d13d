// Package tarread reads tar archives as archive/tar does, member for
// member, byte for byte and error for error, parsing the headers that
// tar writers emit for files, directories and links (ustar and GNU, with
// GNU long names) without archive/tar's cost per member. It does not
// write archives, and it parses no other header: the first member that
// has any other (the end-of-archive marker, PAX records, GNU sparse maps,
// V7 or STAR headers, a bad checksum or number) goes, with the rest of
// the stream, to archive/tar.
package tarread

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"io"
	"path/filepath"
	"slices"
	"time"
)

// blockSize is the size of a tar header and the unit of member data.
const blockSize = 512

// Reader reads a tar archive from a stream. Next and Read behave as
// archive/tar.Reader's do, except that the header Next returns is valid
// only until the next call of Next: it is reused.
type Reader struct {
	r   io.Reader
	tr  *tar.Reader // archive/tar, once it reads the rest of the stream
	nb  int64       // bytes of the current member's data not yet read
	pad int64       // bytes of padding after them, to the next block
	err error       // sticky, as archive/tar's is

	hdr   tar.Header
	blk   [blockSize]byte
	name  []byte // a prefixed name, assembled before it is one string
	trash []byte // skipped data is read into it

	// What Next has read of the member so far, and its GNU long name and
	// link target, if any.
	replay             []byte
	longName, longLink []byte
	names              map[string]string // user and group names met, one string each
	uname              lastName          // the last user name field, and its string
	gname              lastName
}

// lastName is a user or group name field as it was last read, and the
// string it made: most archives have one or two of each, so the field
// is most often what it was in the member before.
type lastName struct {
	field [32]byte
	s     string
}

// NewReader returns a Reader of the archive in r. A source that can seek
// is read by archive/tar alone: it seeks over data rather than reading
// it, which this reader does not do.
func NewReader(r io.Reader) *Reader {
	tr := &Reader{r: r, names: map[string]string{}}
	if _, ok := r.(io.Seeker); ok {
		tr.tr = tar.NewReader(r)
	}
	return tr
}

// Next advances to the next member, skipping what is left of the current
// one's data, and returns its header. It returns io.EOF at the end of
// the archive.
func (r *Reader) Next() (*tar.Header, error) {
	if r.tr != nil {
		return r.tr.Next()
	}
	if r.err != nil {
		return nil, r.err
	}
	hdr, err := r.next()
	if r.tr == nil {
		r.err = err
	}
	return hdr, err
}

// Read reads from the current member's data, as archive/tar's Read does.
func (r *Reader) Read(p []byte) (int, error) {
	if r.tr != nil {
		return r.tr.Read(p)
	}
	if r.err != nil {
		return 0, r.err
	}
	if int64(len(p)) > r.nb {
		p = p[:r.nb]
	}
	var n int
	var err error
	if len(p) > 0 {
		n, err = r.r.Read(p)
		r.nb -= int64(n)
	}
	switch {
	case err == io.EOF && r.nb > 0:
		err = io.ErrUnexpectedEOF
	case err == nil && r.nb == 0:
		err = io.EOF
	}
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

func (r *Reader) next() (*tar.Header, error) {
	if err := r.skip(); err != nil {
		return nil, err
	}
	// What this call reads is kept until the member's own header, to be
	// read again by archive/tar if a header is one this reader leaves to
	// it: GNU long names come before the header they name.
	r.replay = r.replay[:0]
	r.longName, r.longLink = r.longName[:0], r.longLink[:0]
	format := tar.FormatUSTAR | tar.FormatPAX | tar.FormatGNU
	for {
		if _, err := io.ReadFull(r.r, r.blk[:]); err != nil {
			return nil, err // io.EOF where the stream ends at a block boundary
		}
		r.replay = append(r.replay, r.blk[:]...)
		var f fields
		if !r.parse(&f) {
			return r.handOver()
		}
		format &= f.format
		if f.flag == tar.TypeGNULongName || f.flag == tar.TypeGNULongLink {
			if len(r.replay) > maxReplay {
				return r.handOver() // a run of long names, only the last of which counts
			}
			if err := r.readLong(f); err != nil {
				return nil, err
			}
			continue
		}
		if !r.header(f) {
			return r.handOver()
		}
		if format&tar.FormatUSTAR != 0 && format&tar.FormatPAX != 0 {
			format = tar.FormatUSTAR
		}
		r.hdr.Format = format
		r.nb, r.pad = r.hdr.Size, -r.hdr.Size&(blockSize-1)
		if headerOnly(r.hdr.Typeflag) {
			r.nb, r.pad = 0, 0
		}
		return &r.hdr, nil
	}
}

// maxReplay bounds what Next keeps of a member's headers: a name and a
// link target take 2 KiB.
const maxReplay = 8 << 10

// handOver leaves the rest of the stream to archive/tar, from the start
// of the member being read.
func (r *Reader) handOver() (*tar.Header, error) {
	r.tr = tar.NewReader(io.MultiReader(bytes.NewReader(r.replay), r.r))
	return r.tr.Next()
}

// readLong reads the data of a GNU long name or link member, f, and its
// padding, as archive/tar does: parse has checked that it fits in the
// first buffer of io.ReadAll, so archive/tar asks the source for as much
// as is left each time, as this does.
func (r *Reader) readLong(f fields) error {
	b := r.longLink[:0]
	if f.flag == tar.TypeGNULongName {
		b = r.longName[:0]
	}
	b = slices.Grow(b, int(f.size))[:f.size]
	for n := 0; n < len(b); {
		k, err := r.r.Read(b[n:])
		n += k
		if err == io.EOF && n < len(b) {
			return io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return err
		}
		if err == io.EOF {
			break
		}
	}
	r.replay = append(r.replay, b...)
	pad := r.blk[:-f.size&(blockSize-1)]
	if err := r.readPad(pad); err != nil {
		return err
	}
	r.replay = append(r.replay, pad...)
	if f.flag == tar.TypeGNULongName {
		r.longName = b
	} else {
		r.longLink = b
	}
	return nil
}

// skip reads past what is left of the current member's data and its
// padding, with archive/tar's errors: io.ErrUnexpectedEOF where the data
// is cut short, io.EOF where the padding is.
func (r *Reader) skip() error {
	if r.nb > 0 && r.trash == nil {
		// archive/tar discards data in reads of at most 8 KiB (io.Discard's
		// buffer); reads of the same sizes meet the same errors of the source.
		r.trash = make([]byte, 8<<10)
	}
	for r.nb > 0 {
		n, err := r.r.Read(r.trash[:min(r.nb, int64(len(r.trash)))])
		r.nb -= int64(n)
		if err == io.EOF {
			if r.nb > 0 {
				return io.ErrUnexpectedEOF
			}
			break
		}
		if err != nil {
			return err
		}
	}
	pad := r.blk[:r.pad]
	r.pad = 0
	return r.readPad(pad)
}

// readPad reads a member's padding into b, with archive/tar's errors:
// io.EOF where it is cut short.
func (r *Reader) readPad(b []byte) error {
	var n int
	var err error
	for n < len(b) && err == nil {
		var k int
		k, err = r.r.Read(b[n:])
		n += k
	}
	if n == len(b) && err == io.EOF {
		err = nil
	}
	return err
}

// headerOnly reports whether a member of type flag has no data, whatever
// its size says: archive/tar's list.
func headerOnly(flag byte) bool {
	switch flag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return true
	}
	return false
}

// typeRegA is the type flag of a regular file in old archives, which
// archive/tar reports as tar.TypeReg, or tar.TypeDir where the name ends
// in a slash (it deprecates its own name for it).
const typeRegA = '\x00'

// Where the fields of a header block lie (POSIX ustar; GNU puts access
// and change times where ustar has the name prefix).
const (
	offName     = 0
	offMode     = 100
	offUID      = 108
	offGID      = 116
	offSize     = 124
	offModTime  = 136
	offChksum   = 148
	offType     = 156
	offLinkname = 157
	offMagic    = 257
	offVersion  = 263
	offUname    = 265
	offGname    = 297
	offDevmajor = 329
	offDevminor = 337
	offPrefix   = 345 // ustar
	offAtime    = 345 // GNU
	offCtime    = 357 // GNU
	offTrailer  = 508 // STAR's "tar\x00"
)

// fields are the numbers and format of the header block in r.blk.
type fields struct {
	flag                                            byte
	format                                          tar.Format // as archive/tar guesses it from the block alone
	mode, uid, gid, size, mtime, devMajor, devMinor int64
	atime, ctime                                    time.Time
	prefix                                          []byte
}

// parse reads the header block r.blk into f as archive/tar would, and
// reports whether it could: false for every block it leaves to
// archive/tar.
func (r *Reader) parse(f *fields) bool {
	b := &r.blk
	f.flag = b[offType]
	switch f.flag {
	case tar.TypeReg, tar.TypeLink, tar.TypeSymlink, tar.TypeDir, typeRegA:
	case tar.TypeGNULongName, tar.TypeGNULongLink:
		if string(b[offMagic:offMagic+6]) != "ustar " {
			return false // only GNU writes them
		}
	default:
		return false
	}
	switch magic := string(b[offMagic : offMagic+6]); {
	case magic == "ustar\x00" && string(b[offTrailer:]) != "tar\x00":
		f.format = tar.FormatUSTAR | tar.FormatPAX
	case magic == "ustar " && string(b[offVersion:offVersion+2]) == " \x00":
		f.format = tar.FormatGNU
	default:
		return false // V7 or STAR, or not a header
	}
	sum, high := checksum(b)
	if want, ok := octal(b[offChksum : offChksum+8]); !ok || want != sum {
		return false // or a signed sum, of old Sun tar
	}
	var ok [7]bool
	f.mode, ok[0] = octal(b[offMode : offMode+8])
	f.uid, ok[1] = octal(b[offUID : offUID+8])
	f.gid, ok[2] = octal(b[offGID : offGID+8])
	f.size, ok[3] = octal(b[offSize : offSize+12])
	f.mtime, ok[4] = octal(b[offModTime : offModTime+12])
	f.devMajor, ok[5] = octal(b[offDevmajor : offDevmajor+8])
	f.devMinor, ok[6] = octal(b[offDevminor : offDevminor+8])
	if ok != [7]bool{true, true, true, true, true, true, true} {
		return false
	}
	if (f.flag == tar.TypeGNULongName || f.flag == tar.TypeGNULongLink) && f.size > 512 {
		return false // archive/tar would read it in pieces: see readLong
	}
	if f.format == tar.FormatGNU {
		var ok bool
		if f.atime, ok = gnuTime(b[offAtime : offAtime+12]); !ok {
			return false
		}
		if f.ctime, ok = gnuTime(b[offCtime : offCtime+12]); !ok {
			return false
		}
		return true
	}
	f.prefix = cstring(b[offPrefix : offPrefix+155])
	// archive/tar calls a ustar block of any other shape no format.
	if high || b[offMode+7] != 0 || b[offUID+7] != 0 || b[offGID+7] != 0 || b[offSize+11] != 0 ||
		b[offModTime+11] != 0 || b[offDevmajor+7] != 0 || b[offDevminor+7] != 0 {
		f.format = tar.FormatUnknown
	}
	return true
}

// header makes r.hdr of the member whose header block, in r.blk, parse
// read into f, after any GNU long name and link, and reports whether it
// could: a name that is not local is left to archive/tar.
func (r *Reader) header(f fields) bool {
	b := &r.blk
	name := cstring(r.longName)
	if len(name) == 0 {
		name = cstring(b[offName : offName+100])
		if len(f.prefix) > 0 {
			r.name = append(append(append(r.name[:0], f.prefix...), '/'), name...)
			name = r.name
		}
	}
	link := cstring(r.longLink)
	if len(link) == 0 {
		link = cstring(b[offLinkname : offLinkname+100])
	}
	flag := f.flag
	if flag == typeRegA {
		flag = tar.TypeReg
		if bytes.HasSuffix(name, []byte("/")) {
			flag = tar.TypeDir // old archives mark directories so
		}
	}
	if !local(name) {
		return false // archive/tar decides whether it is refused
	}
	r.hdr = tar.Header{
		Typeflag:   flag,
		Name:       string(name),
		Linkname:   string(link),
		Size:       f.size,
		Mode:       f.mode,
		Uid:        int(f.uid),
		Gid:        int(f.gid),
		Uname:      r.intern(b[offUname:offUname+32], &r.uname),
		Gname:      r.intern(b[offGname:offGname+32], &r.gname),
		ModTime:    time.Unix(f.mtime, 0),
		AccessTime: f.atime,
		ChangeTime: f.ctime,
		Devmajor:   f.devMajor,
		Devminor:   f.devMinor,
	}
	return true
}

// checksum returns the unsigned sum of the bytes of b, its checksum field
// counted as spaces, and whether any byte is not ASCII. It adds the bytes
// eight at a time, in four 16-bit lanes that cannot overflow: 64 words
// of two bytes of at most 255 make at most 32640.
func checksum(b *[blockSize]byte) (sum int64, high bool) {
	const lo = 0x00ff00ff00ff00ff
	var lanes, or uint64
	for i := 0; i < blockSize; i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		or |= w
		lanes += w&lo + w>>8&lo
	}
	s := lanes&0xffff + lanes>>16&0xffff + lanes>>32&0xffff + lanes>>48
	for _, c := range b[offChksum : offChksum+8] {
		s -= uint64(c)
	}
	return int64(s) + 8*' ', or&0x8080808080808080 != 0
}

// octal parses a numeric field as archive/tar does when it is octal:
// spaces and NULs trimmed from both ends, the rest up to a NUL octal
// digits, none an empty field. It reports false for a field archive/tar
// would refuse, and for one in base-256, which is left to archive/tar.
func octal(b []byte) (int64, bool) {
	if b[0]&0x80 != 0 {
		return 0, false
	}
	i, j := 0, len(b)
	for i < j && (b[i] == ' ' || b[i] == 0) {
		i++
	}
	for j > i && (b[j-1] == ' ' || b[j-1] == 0) {
		j--
	}
	var x int64 // fields are at most 12 digits, 36 bits
	for _, c := range b[i:j] {
		if c == 0 {
			break
		}
		if c < '0' || c > '7' {
			return 0, false
		}
		x = x<<3 | int64(c-'0')
	}
	return x, true
}

// gnuTime parses a GNU access or change time: the zero time where the
// field starts with a NUL, as archive/tar has it.
func gnuTime(b []byte) (time.Time, bool) {
	if b[0] == 0 {
		return time.Time{}, true
	}
	t, ok := octal(b)
	if !ok {
		return time.Time{}, false // archive/tar reads such a block as an old Go writer's
	}
	return time.Unix(t, 0), true
}

// cstring is b up to its first NUL.
func cstring(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// intern returns the user or group name in field as one string per
// name: an archive has few, and a million members would copy them each.
// (A zero field and the zero lastName agree: the name is "".)
func (r *Reader) intern(field []byte, last *lastName) string {
	if [32]byte(field) == last.field {
		return last.s
	}
	b := cstring(field)
	s, ok := r.names[string(b)]
	if !ok {
		s = string(b)
		if len(r.names) < 1024 { // a hostile archive could make every name new
			r.names[s] = s
		}
	}
	last.field, last.s = [32]byte(field), s
	return s
}

// local reports whether archive/tar would call name local, cheaply for a
// name with no "..": filepath.IsLocal cleans names that start with "./",
// as GNU tar's do, into new strings. Names it says are not local go to
// archive/tar, which refuses them or not as GODEBUG tarinsecurepath says.
func local(name []byte) bool {
	if filepath.Separator != '/' {
		return filepath.IsLocal(string(name))
	}
	return len(name) > 0 && name[0] != '/' && !bytes.Contains(name, []byte(".."))
}
