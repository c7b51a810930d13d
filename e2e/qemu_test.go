//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// machine is the systemd VM: a qcow2 overlay on the cached root, kept for
// all boots of one test so each boot finds what the ones before left, and
// the control disk holding olimage and the scripts the VM runs.
type machine struct {
	qemu    string
	accel   string // "kvm" or "tcg"
	root    debianRoot
	overlay string
	control string
	boots   int // so far, numbering the consoles kept in $OLIMAGE_E2E_LOGS
}

// bootTimeout bounds one boot under software emulation: systemd reaches
// multi-user.target in about 90 s there, and a boot runs a few olimage
// commands and starts python3 a few times.
const bootTimeout = 15 * time.Minute

// Console lines the VM's script prints; see testdata/vm/run.
var (
	stepLine = regexp.MustCompile(`OLIMAGE-E2E-STEP: [^\r\n]*`)
	failLine = regexp.MustCompile(`OLIMAGE-E2E-FAIL: [^\r\n]*`)
	passLine = regexp.MustCompile(`OLIMAGE-E2E-PASS`)
	// systemd gave up booting: the script will never run.
	emergency = regexp.MustCompile(`You are in (emergency|rescue) mode|Kernel panic`)
)

// accelerator returns "kvm" when a KVM guest boots the kernel far enough to
// panic for want of a root file system, else "tcg". /dev/kvm can exist
// while -enable-kvm fails or hangs, as on some nested hosts, so only a
// boot tells. $OLIMAGE_E2E_ACCEL forces one.
func accelerator(t *testing.T, qemu, kernel string) string {
	t.Helper()
	if a := os.Getenv("OLIMAGE_E2E_ACCEL"); a != "" {
		return a
	}
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return "tcg"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "kvm", "-nographic", "-m", "256", "-no-reboot", "-nic", "none",
		"-kernel", kernel, "-append", "console=ttyS0 panic=-1")
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, _ := cmd.CombinedOutput()
	if bytes.Contains(out, []byte("Kernel panic")) {
		return "kvm"
	}
	t.Logf("KVM does not boot a kernel here, using software emulation (TCG); the probe printed:\n%s", tail(string(out), 5))
	return "tcg"
}

// boot starts the machine with volume as its second disk (/dev/vdb) and
// the kernel command line naming the stage the script runs and the release
// that volume holds; it waits for the script's result and the power-off,
// and fails the test with the console's tail when a check failed. It
// returns whether the stage ran to its end, so the next boot can follow.
func (m *machine) boot(t *testing.T, name, stage string, release int, volume string) bool {
	t.Helper()
	timeout := bootTimeout
	if m.accel == "kvm" {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Under emulation on a busy host, udev can take longer than systemd's
	// default 90 s to show /dev/disk/by-label/ol-web, and /1 is then given
	// up: wait as long as the boot may take.
	cmdline := fmt.Sprintf("root=/dev/vda rw console=ttyS0 panic=-1 systemd.default_timeout_start_sec=%d olimage_e2e.stage=%s olimage_e2e.release=%d",
		int(timeout.Seconds()), stage, release)
	cmd := exec.CommandContext(ctx, m.qemu,
		"-accel", m.accel, "-nographic", "-m", "1024", "-no-reboot", "-nic", "none",
		"-kernel", m.root.kernel, "-initrd", m.root.initrd, "-append", cmdline,
		"-drive", "file="+m.overlay+",format=qcow2,if=virtio",
		"-drive", "file="+volume+",format=raw,if=virtio",
		"-drive", "file="+m.control+",format=raw,if=virtio",
	)
	cmd.WaitDelay = 5 * time.Second
	// A test killed at its -timeout takes the VM with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", m.qemu, err)
	}

	// Read the console as it comes, to stop a VM stuck in emergency mode
	// at once rather than at the timeout.
	var console bytes.Buffer
	var stuck string
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := bufio.NewReader(pipe)
		for {
			line, err := r.ReadString('\n')
			console.WriteString(line)
			if s := stepLine.FindString(line); s != "" {
				t.Logf("%s, %s in: %s", name, time.Since(start).Round(time.Second), strings.TrimPrefix(s, "OLIMAGE-E2E-STEP: "))
			}
			if s := emergency.FindString(line); s != "" && stuck == "" {
				stuck = s
				cancel()
			}
			if err != nil {
				if err != io.EOF {
					t.Logf("%s: reading the console: %v", name, err)
				}
				return
			}
		}
	}()
	<-done
	werr := cmd.Wait()
	elapsed := time.Since(start)
	out := console.String()
	t.Logf("%s: boot %q ran %s (%s)", name, stage, elapsed.Round(time.Second), m.accel)
	if d := os.Getenv("OLIMAGE_E2E_LOGS"); d != "" {
		m.boots++
		p := filepath.Join(d, fmt.Sprintf("boot-%d-%s.log", m.boots, stage))
		if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
			t.Errorf("keeping the console: %v", err)
		}
	}

	fails := failLine.FindAllString(out, -1)
	switch {
	case stuck != "":
		t.Errorf("%s: the VM stopped booting (%q); console:\n%s", name, stuck, tail(out, 150))
	case ctx.Err() != nil:
		t.Errorf("%s: the VM did not finish within %s; console:\n%s", name, timeout, tail(out, 150))
	case len(fails) > 0:
		t.Errorf("%s:\n%s\nconsole:\n%s", name, strings.Join(fails, "\n"), tail(out, 150))
		return true
	case !passLine.MatchString(out):
		t.Errorf("%s: the VM stopped without a result (qemu: %v); console:\n%s", name, werr, tail(out, 150))
	default:
		return true
	}
	return false
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
