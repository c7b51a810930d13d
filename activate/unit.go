package activate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// ActivateUnitName is the systemd unit that activates the volume at boot.
const ActivateUnitName = "olimage-activate.service"

// UnitDir is where units installed by the administrator live, relative
// to the root.
const UnitDir = "etc/systemd/system"

// Systemctl runs systemctl with args. Activation calls it on a live
// systemd only; tests pass one that records the calls.
type Systemctl func(ctx context.Context, args ...string) error

// runSystemctl runs the systemctl of the machine.
func runSystemctl(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// systemctlFor returns the systemctl to call for changes to root: the
// given one, or the machine's own when root is "/" and systemd runs it
// (it has /run/systemd/system), or nil when there is none to tell.
func systemctlFor(root string, given Systemctl) Systemctl {
	if given != nil {
		return given
	}
	if root != "/" {
		return nil
	}
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return nil
	}
	return runSystemctl
}

// UnitOptions say how olimage-activate.service runs activate.
type UnitOptions struct {
	// Exec is the olimage binary the unit runs: /usr/local/bin/olimage.
	Exec string
	// Volume is where the volume is mounted: /1.
	Volume string
	// Key and Sidecar, when set, make the unit run activate --key KEY
	// --sidecar SIDECAR, so each boot checks the volume against the
	// sidecar CI signed before anything changes.
	Key, Sidecar string
}

// ActivateUnit is olimage-activate.service: once the volume is mounted
// (Requires= and After= its mount unit, which systemd also makes from an
// fstab line), it runs olimage activate, before multi-user.target and so
// before the role's services, which activate also orders after it.
func ActivateUnit(o UnitOptions) (string, error) {
	if !path.IsAbs(o.Exec) {
		return "", fmt.Errorf("olimage binary %q: want an absolute path", o.Exec)
	}
	if !path.IsAbs(o.Volume) || path.Clean(o.Volume) != o.Volume || o.Volume == "/" {
		return "", fmt.Errorf("volume %q: want the absolute path where the volume is mounted, such as /1", o.Volume)
	}
	if (o.Key == "") != (o.Sidecar == "") {
		return "", fmt.Errorf("key %q, sidecar %q: give both or neither", o.Key, o.Sidecar)
	}
	args := "activate --volume " + o.Volume + " --root /"
	for _, p := range []string{o.Exec, o.Volume, o.Key, o.Sidecar} {
		if p != "" && strings.ContainsAny(p, " \t\n\\\"'%$") {
			return "", fmt.Errorf("%q: a path with spaces, quotes, %% or $ needs quoting olimage does not do", p)
		}
	}
	if o.Key != "" {
		if !path.IsAbs(o.Key) || !path.IsAbs(o.Sidecar) {
			return "", fmt.Errorf("key %q, sidecar %q: want absolute paths on the VM", o.Key, o.Sidecar)
		}
		args += " --key " + o.Key + " --sidecar " + o.Sidecar
	}
	mnt := UnitName(o.Volume)
	return fmt.Sprintf(`# /etc/systemd/system/%s
[Unit]
Description=Activate the olimage volume at %s
Documentation=https://github.com/internetarchive/olimage
Requires=%s
After=%s
Before=multi-user.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=%s %s
TimeoutStartSec=15min

[Install]
WantedBy=multi-user.target
`, ActivateUnitName, o.Volume, mnt, mnt, o.Exec, args), nil
}

// InstallActivateUnit writes olimage-activate.service to root's
// /etc/systemd/system and enables it (the multi-user.target.wants link
// systemctl enable makes), replacing an older version; on a live systemd
// it reloads the units. It returns the paths it changed, relative to
// root.
func InstallActivateUnit(ctx context.Context, root string, o UnitOptions, sc Systemctl) ([]string, error) {
	text, err := ActivateUnit(o)
	if err != nil {
		return nil, err
	}
	return InstallUnit(ctx, root, ActivateUnitName, text, "multi-user.target.wants", sc)
}

// InstallUnit writes the unit name with text to root's
// /etc/systemd/system and enables it with a link in /etc/systemd/system/BY
// (multi-user.target.wants for WantedBy=multi-user.target,
// 1.mount.requires for RequiredBy=1.mount), as systemctl enable does,
// replacing an older version; on a live systemd it reloads the units. It
// returns the paths it changed, relative to root; run again, none.
func InstallUnit(ctx context.Context, root, name, text, by string, sc Systemctl) ([]string, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	var changed []string
	unit := path.Join(UnitDir, name)
	p := filepath.Join(root, unit)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	old, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		old = nil
	} else if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != text || !old.Mode().IsRegular() {
		if old != nil && !old.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: %s, not a regular file; move it away and run again", p, describe(p, old))
		}
		if err := writeFileAtomic(p, "", []byte(text), 0o644, old); err != nil {
			return nil, err
		}
		changed = append(changed, unit)
	}
	wants := path.Join(UnitDir, by, name)
	w := filepath.Join(root, wants)
	if err := os.MkdirAll(filepath.Dir(w), 0o755); err != nil {
		return nil, err
	}
	target := "/" + unit
	if t, err := os.Readlink(w); err != nil || t != target {
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			os.Remove(w)
		} else if fi, lerr := os.Lstat(w); lerr == nil {
			return nil, fmt.Errorf("%s: %s, not a symlink; move it away and run again", w, describe(w, fi))
		}
		if err := os.Symlink(target, w); err != nil {
			return nil, err
		}
		if err := syncDir(filepath.Dir(w)); err != nil {
			return nil, err
		}
		changed = append(changed, wants)
	}
	if sc = systemctlFor(root, sc); sc != nil && len(changed) > 0 {
		if err := sc(ctx, "daemon-reload"); err != nil {
			return changed, err
		}
	}
	return changed, nil
}
