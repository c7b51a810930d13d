package reader

import (
	"bytes"
	"fmt"
	"io"
	"sort"
)

// fileReader reads a file's bytes through its extents; holes and
// uninitialised extents read as zeros.
type fileReader struct {
	fs   *FS
	ino  uint32
	ext  []extent
	size int64
	off  int64
	hint int // extent index of the last read, for sequential reads

	inlined []byte // the whole content of an inline-data file
}

// ReadAt reads len(p) bytes at off.
func (r *fileReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("inode %d: negative offset", r.ino)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > r.size-off {
		p = p[:r.size-off]
	}
	if r.inlined != nil {
		n := 0
		if off < int64(len(r.inlined)) {
			n = copy(p, r.inlined[off:])
		}
		clear(p[n:]) // inline data past what is stored reads as zeros
		n = len(p)
		if n < want {
			return n, io.EOF
		}
		return n, nil
	}
	bs := r.fs.bs
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		lblk := uint64(pos / bs)
		i := r.find(lblk)
		var m int
		if i < len(r.ext) && r.ext[i].logical <= lblk {
			e := r.ext[i]
			avail := int64(e.end()-lblk)*bs - pos%bs
			m = int(min(int64(len(p)-n), avail))
			if e.uninit {
				clear(p[n : n+m])
			} else {
				phys := int64(e.phys+lblk-e.logical)*bs + pos%bs
				if err := r.fs.readAt(p[n:n+m], phys); err != nil {
					return n, inodeCorrupt(r.ino, "data: %v", err)
				}
			}
		} else {
			// A hole up to the next extent or the end.
			m = len(p) - n
			if i < len(r.ext) {
				m = int(min(int64(m), int64(r.ext[i].logical)*bs-pos))
			}
			clear(p[n : n+m])
		}
		n += m
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// find returns the index of the first extent that ends after lblk.
func (r *fileReader) find(lblk uint64) int {
	if h := r.hint; h < len(r.ext) && r.ext[h].end() > lblk && (h == 0 || r.ext[h-1].end() <= lblk) {
		return h
	}
	if h := r.hint + 1; h < len(r.ext) && r.ext[h].end() > lblk && r.ext[h-1].end() <= lblk {
		r.hint = h
		return h
	}
	r.hint = sort.Search(len(r.ext), func(i int) bool { return r.ext[i].end() > lblk })
	return r.hint
}

func (r *fileReader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// WriteTo copies the rest of the file to w in large reads.
func (r *fileReader) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, min(1<<20, max(r.size-r.off, 1)))
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (r *fileReader) Close() error { return nil }

// openInode returns a reader of a regular file's (or symlink's) content.
func (fs *FS) openInode(in *inode) (*fileReader, error) {
	if int64(in.size) < 0 {
		return nil, inodeCorrupt(in.ino, "size %d is too large", in.size)
	}
	if in.inline() {
		data, err := fs.inlineData(in)
		if err != nil {
			return nil, err
		}
		return &fileReader{fs: fs, ino: in.ino, size: int64(in.size), inlined: data}, nil
	}
	ext, err := fs.fileExtents(in, nil)
	if err != nil {
		return nil, err
	}
	return &fileReader{fs: fs, ino: in.ino, ext: ext, size: int64(in.size)}, nil
}

// inlineData returns the content of an inode with the inline data flag:
// the first 60 bytes in i_block, the rest in the system.data xattr.
//
// A size beyond what is stored (mke2fs -d makes such files from sparse
// sources) reads as zeros; the returned slice holds only the stored
// bytes, at most the inode's size.
func (fs *FS) inlineData(in *inode) ([]byte, error) {
	out := make([]byte, 0, min(in.size, uint64(len(in.raw))))
	out = append(out, in.block[:min(in.size, 60)]...)
	if in.size > 60 {
		rest, err := fs.inlineXattr(in)
		if err != nil {
			return nil, err
		}
		out = append(out, rest[:min(uint64(len(rest)), in.size-60)]...)
	}
	return out, nil
}

// symlinkTarget reads the text of a symbolic link.
func (fs *FS) symlinkTarget(in *inode) (string, error) {
	if in.size == 0 {
		return "", inodeCorrupt(in.ino, "symlink with an empty target")
	}
	if in.size > maxSymlinkLen || in.size >= uint64(fs.bs)*16 {
		return "", inodeCorrupt(in.ino, "symlink target of %d bytes", in.size)
	}
	var data []byte
	switch {
	case in.inline():
		d, err := fs.inlineData(in)
		if err != nil {
			return "", err
		}
		if uint64(len(d)) != in.size {
			return "", inodeCorrupt(in.ino, "inline symlink of %d bytes stores %d", in.size, len(d))
		}
		data = d
	case fs.fastSymlink(in):
		data = in.block[:in.size]
	default:
		r, err := fs.openInode(in)
		if err != nil {
			return "", err
		}
		data = make([]byte, in.size)
		if _, err := io.ReadFull(r, data); err != nil {
			return "", inodeCorrupt(in.ino, "symlink target: %v", err)
		}
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return "", inodeCorrupt(in.ino, "symlink target has a NUL byte at %d", i)
	}
	return string(data), nil
}

// fastSymlink reports whether the link text is stored in i_block: a
// short target and no data blocks beyond an xattr block.
func (fs *FS) fastSymlink(in *inode) bool {
	if in.extents() || in.size >= 60 {
		return false
	}
	blocks := fs.iBlocks(in)
	if in.fileACL != 0 {
		if blocks == 0 {
			return true
		}
		blocks--
	}
	return blocks == 0
}
