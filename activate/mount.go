package activate

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/internetarchive/olimage/ext4/format"
)

// ErrNotExt4 is returned for a file or device with no ext4 superblock.
var ErrNotExt4 = errors.New("no ext4 superblock")

// ErrNoLabel is returned when a file system to mount by label has none.
var ErrNoLabel = errors.New("the file system has no label; mount it by UUID")

// FS names a file system the way mounting finds it.
type FS struct {
	UUID  string // 8-4-4-4-12 lower-case hex
	Label string // may be empty
}

// ReadFS reads the UUID and label of the ext4 file system r holds: a
// block device, or an image file as package image opens it. name is for
// errors.
func ReadFS(r io.ReaderAt, name string) (FS, error) {
	b := make([]byte, format.SuperblockSize)
	if _, err := r.ReadAt(b, format.SuperblockOffset); err != nil && err != io.EOF {
		return FS{}, fmt.Errorf("%s: superblock: %w", name, err)
	}
	sb, err := format.ParseSuperblock(b)
	if err != nil {
		return FS{}, fmt.Errorf("%s: %w", name, ErrNotExt4)
	}
	return FS{UUID: format.FormatUUID(sb.UUID), Label: sb.Label()}, nil
}

// MountOptions are those of the golden volume: read-only, as nothing on
// the VM may write to it, and without nofail: a missing volume fails the
// boot loudly rather than letting services start against dangling links.
// Services are ordered after the mount by olimage-activate.service
// (Requires= and After= the mount unit) and by the RequiresMountsFor=
// drop-in activate gives the units the image ships. No x-systemd.*
// options: busybox mount passes them to the kernel, which refuses them.
const MountOptions = "ro,nodev"

// FstabLine is the /etc/fstab line that mounts the file system at mount,
// by label (stable across the releases of a role), or by UUID if byUUID
// (one release only).
func FstabLine(f FS, mount string, byUUID bool) (string, error) {
	spec, err := f.spec(!byUUID)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %s ext4 %s 0 2", spec, fstabEscape(mount), MountOptions), nil
}

func (f FS) spec(byLabel bool) (string, error) {
	if !byLabel {
		return "UUID=" + f.UUID, nil
	}
	if f.Label == "" {
		return "", ErrNoLabel
	}
	return "LABEL=" + fstabEscape(f.Label), nil
}

// fstabEscape writes space, tab, newline and backslash as octal escapes,
// as fstab(5) reads them.
func fstabEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c == ' ' || c == '\t' || c == '\n' || c == '\\' {
			fmt.Fprintf(&b, "\\%03o", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// UnitName is the name systemd requires for the .mount unit of a mount
// point: its path escaped as systemd-escape --path does, plus ".mount".
func UnitName(mount string) string {
	p := strings.Trim(mount, "/")
	if p == "" {
		return "-.mount"
	}
	var b strings.Builder
	for i, c := range []byte(p) {
		switch {
		case c == '/':
			b.WriteByte('-')
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ':' || c == '_' || c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String() + ".mount"
}

// MountUnit is the systemd .mount unit (to be installed as
// /etc/systemd/system/UnitName(mount)) that mounts the file system at
// mount read-only, by label, or by UUID if byUUID.
func MountUnit(f FS, mount string, byUUID bool) (string, error) {
	what := "/dev/disk/by-uuid/" + f.UUID
	if !byUUID {
		if f.Label == "" {
			return "", ErrNoLabel
		}
		what = "/dev/disk/by-label/" + udevEscape(f.Label)
	}
	name := f.Label
	if name == "" {
		name = f.UUID
	}
	return fmt.Sprintf(`# /etc/systemd/system/%s
[Unit]
Description=olimage data volume %s at %s
Documentation=https://github.com/internetarchive/olimage
Before=%s

[Mount]
What=%s
Where=%s
Type=ext4
Options=%s
TimeoutSec=90s

[Install]
WantedBy=local-fs.target
`, UnitName(mount), name, mount, ActivateUnitName, what, mount, MountOptions), nil
}

// udevEscape encodes a label as udev names it under /dev/disk/by-label.
func udevEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("#+-.:=@_", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, `\x%02x`, c)
	}
	return b.String()
}
