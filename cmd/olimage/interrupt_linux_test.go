package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/internetarchive/olimage/internal/testenv"
)

// TestInterruptedReads interrupts commands busy with a file of an image
// that claims 2^40 bytes (holes: no disk is read, only zeros made), once
// each is in the middle of it. Each must exit 130, and extract must leave
// no directory behind.
func TestInterruptedReads(t *testing.T) {
	debugfs := testenv.Tool(t, "debugfs")
	bin := binary(t)
	fleet := tinyFleet(t, t.TempDir(), "data\n")
	img := buildRole(t, fleet, "r")
	if out, err := exec.Command(debugfs, "-w", "-R", "sif /opt/app/data size 1099511627776", img).CombinedOutput(); err != nil {
		t.Fatalf("debugfs: %v\n%s", err, out)
	}

	img2 := copyImage(t, img)

	work := t.TempDir()
	stdout := filepath.Join(work, "stdout")
	dir := filepath.Join(work, "x")
	for _, tc := range []struct {
		name string
		args []string
		busy func(pid int) bool // the command is in the middle of the big file
	}{
		{"cat", []string{"cat", img, "opt/app/data"}, func(int) bool {
			fi, err := os.Stat(stdout)
			return err == nil && fi.Size() > 64<<20
		}},
		{"extract", []string{"extract", img, dir}, func(int) bool {
			_, err := os.Stat(filepath.Join(dir, "opt/app/data"))
			return err == nil
		}},
		// Both sides claim the same 2^40 bytes: compared byte by byte.
		{"diff", []string{"diff", "--no-manifests", img, img2}, func(pid int) bool { return cpuSeconds(pid) >= 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := os.Create(stdout)
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			var stderr strings.Builder
			cmd := exec.Command(bin, tc.args...)
			cmd.Stdout, cmd.Stderr = out, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			for !tc.busy(cmd.Process.Pid) {
				select {
				case err := <-done:
					t.Fatalf("olimage %s ended before it was interrupted: %v\n%s", tc.name, err, stderr.String())
				case <-time.After(10 * time.Millisecond):
				}
			}
			cmd.Process.Signal(syscall.SIGINT)
			start := time.Now()
			select {
			case <-done:
			case <-time.After(time.Minute): // a hang, not a slow exit
				cmd.Process.Kill()
				<-done
				t.Fatalf("olimage %s still ran a minute after SIGINT", tc.name)
			}
			t.Logf("olimage %s exited %v after SIGINT", tc.name, time.Since(start).Round(time.Millisecond))
			if code := cmd.ProcessState.ExitCode(); code != exitInterrupted {
				t.Errorf("olimage %s: exit %d after SIGINT, want %d\n%s", tc.name, code, exitInterrupted, stderr.String())
			}
			if _, err := os.Lstat(dir); !os.IsNotExist(err) {
				t.Errorf("%s left behind after the interruption (%v)", dir, err)
			}
		})
	}
}

// cpuSeconds is the CPU time process pid has used, from /proc/PID/stat.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th, in clock ticks (100 a second).
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return float64(u+s) / 100
}
