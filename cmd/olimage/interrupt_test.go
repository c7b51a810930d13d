package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
)

// readBytes is how many bytes process pid has read, from /proc/PID/io.
func readBytes(pid int) (int64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// TestValidateInterrupted sends SIGINT to validate while it reads a large
// archive: it stops there, says so and exits 130, where it used to read
// and merge every member first and exit 0.
func TestValidateInterrupted(t *testing.T) {
	if _, ok := readBytes(os.Getpid()); !ok {
		testenv.Skip(t, "no /proc/PID/io to see when the archive is being read")
	}
	const members = 300000
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	for i := range members {
		name := fmt.Sprintf("opt/app/%03d/f%07d", i%500, i)
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	zw.Close()
	dir := t.TempDir()
	testfs.WriteFiles(t, dir, map[string]string{
		"olimage.yaml": "fleet: t\n",
		"roles/r.yaml": "overlays: [{name: big, tar: big.tar.gz}]\n",
		"big.tar.gz":   buf.String(),
	})
	bin := binary(t)
	cmd := exec.Command(bin, "-f", dir, "validate")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Interrupt once a megabyte of the archive has been read: it is in
	// the middle of reading the role's one source, 300,000 members. With
	// one role, a validate that looks at the signal only between roles
	// finishes and exits 0.
	for {
		if n, _ := readBytes(cmd.Process.Pid); n > 1<<20 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("validate ended before it could be interrupted: %v\n%s%s", err, stdout.String(), stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := <-done
	t.Logf("exited %v after SIGINT", time.Since(sent))
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("got %v, want exit status %d\nstdout:\n%s\nstderr:\n%s", err, exitInterrupted, stdout.String(), stderr.String())
	}
	if got := stderr.String(); got != "olimage: interrupted\n" {
		t.Errorf("stderr %q, want olimage: interrupted", got)
	}
}
