package activate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// FstabFile is the file system table, relative to the root.
const FstabFile = "etc/fstab"

// What WriteFstab did.
const (
	FstabAdded     = "added"
	FstabReplaced  = "replaced"
	FstabUnchanged = "unchanged"
)

// WriteFstab makes line the one entry of root/etc/fstab that mounts at
// mount: the first entry for that mount point is replaced, any further
// ones are dropped, and with none the line is appended. Every other line
// stays as it was, byte for byte. The file is replaced atomically (a
// temporary file in the same directory, renamed over it) with its mode
// and owner kept. It returns what it did.
func WriteFstab(root, mount, line string) (string, error) {
	p := filepath.Join(root, FstabFile)
	fi, err := os.Lstat(p)
	var old []byte
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fi = nil
	case err != nil:
		return "", err
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("%s: %s, not a regular file; edit it by hand", p, describe(p, fi))
	default:
		if old, err = os.ReadFile(p); err != nil {
			return "", err
		}
	}
	text, did := editFstab(string(old), mount, line)
	if did == FstabUnchanged {
		return did, nil
	}
	mode := fs.FileMode(0o644)
	if fi != nil {
		mode = fi.Mode().Perm()
	}
	if err := writeFileAtomic(p, "", []byte(text), mode, fi); err != nil {
		return "", err
	}
	return did, nil
}

// editFstab returns text with line as the one entry for mount.
func editFstab(text, mount, line string) (string, string) {
	mount = path.Clean(mount)
	var out []string
	did := FstabAdded
	lines := strings.SplitAfter(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for _, l := range lines {
		if fstabMount(l) != mount {
			out = append(out, l)
			continue
		}
		if did != FstabAdded {
			did = FstabReplaced // a duplicate entry goes
			continue
		}
		if strings.TrimRight(l, "\n") == line {
			did = FstabUnchanged
		} else {
			did = FstabReplaced
		}
		out = append(out, line+"\n")
	}
	if did == FstabAdded {
		if n := len(out); n > 0 && !strings.HasSuffix(out[n-1], "\n") {
			out[n-1] += "\n"
		}
		out = append(out, line+"\n")
	}
	return strings.Join(out, ""), did
}

// fstabMount returns the mount point of an fstab line, cleaned and
// unescaped, or "" for a comment, a blank or a malformed line.
func fstabMount(l string) string {
	f := strings.Fields(l)
	if len(f) < 2 || strings.HasPrefix(f[0], "#") {
		return ""
	}
	return path.Clean(fstabUnescape(f[1]))
}

// fstabUnescape reads the octal escapes fstabEscape writes.
func fstabUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
