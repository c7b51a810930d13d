package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/sys/unix"
)

// TestMain makes the test binary double as the olimage command, so that
// scripts run it with exec and see its real exit status and output.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"olimage": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the end-to-end CLI scripts in testdata/script. Each
// writes a small fleet inline and checks exit statuses, stdout and stderr.
// Run one with: go test ./cmd/olimage -run TestScripts/NAME
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Condition: func(cond string) (bool, error) {
			if cond == "root" {
				// CI runs as root and sets OLIMAGE_TEST_DISALLOW_SKIP: a
				// script that needs root must not skip there.
				return os.Geteuid() == 0 || testenv.DisallowSkip(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"mktar":    cmdMktar,
			"corrupt":  cmdCorrupt,
			"truncate": cmdTruncate,
			"mkfifo":   cmdMkfifo,
			"setuid":   cmdSetuid,
			"exits":    cmdExits,
			"hardlink": cmdHardlink,
			"setxattr": cmdSetxattr,
		},
	})
}

// cmdMktar writes a tar archive, so that scripts need no host tar and can
// hold members a well-behaved tar would never write.
//
//	mktar OUT MEMBER...
//
// OUT ending in .gz or .tgz is gzip-compressed, in .zst zstd-compressed.
// Each MEMBER is TYPE:NAME followed by ;KEY=VALUE options:
//
//	file:NAME      a regular file; content=TEXT, or from=FILE (a script file)
//	dir:NAME       a directory
//	symlink:NAME   target=TARGET
//	link:NAME      a hard link; target=MEMBER
//	char:NAME      a character device (1,3)
//	block:NAME     a block device (7,0)
//	fifo:NAME      a named pipe
//
// Every type takes mode=OCTAL (default 0644, 0755 for directories, 0777
// for symlinks), mtime=UNIXSECONDS (default 2030-01-01, later than any
// fleet epoch, so that clamping shows), uid=N (uid and gid N, user and
// group "user") and xattr=NAME:VALUE. In NAME and values, \xHH is the
// byte HH and <N*S> is S repeated N times, for names too long to write out.
// archive/tar refuses to write a NUL in a name, so mktar cannot either.
func cmdMktar(ts *testscript.TestScript, neg bool, args []string) {
	scriptUsage(ts, neg, len(args) >= 1, "mktar OUT.tar[.gz|.tgz|.zst] MEMBER...")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, spec := range args[1:] {
		hdr, content, err := parseMember(ts, spec)
		if err != nil {
			ts.Fatalf("mktar: %s: %v", spec, err)
		}
		if hdr.ModTime.IsZero() {
			hdr.ModTime = mtime
		}
		if err := tw.WriteHeader(hdr); err != nil {
			ts.Fatalf("mktar: %s: %v", spec, err)
		}
		if _, err := tw.Write(content); err != nil {
			ts.Fatalf("mktar: %s: %v", spec, err)
		}
	}
	ts.Check(tw.Close())

	out := args[0]
	data := buf.Bytes()
	switch {
	case strings.HasSuffix(out, ".gz"), strings.HasSuffix(out, ".tgz"):
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		_, err := zw.Write(data)
		ts.Check(err)
		ts.Check(zw.Close())
		data = z.Bytes()
	case strings.HasSuffix(out, ".zst"):
		var z bytes.Buffer
		zw, err := zstd.NewWriter(&z)
		ts.Check(err)
		_, err = zw.Write(data)
		ts.Check(err)
		ts.Check(zw.Close())
		data = z.Bytes()
	}
	p := ts.MkAbs(out)
	ts.Check(os.MkdirAll(filepath.Dir(p), 0o755))
	ts.Check(os.WriteFile(p, data, 0o644))
}

func parseMember(ts *testscript.TestScript, spec string) (*tar.Header, []byte, error) {
	fields := strings.Split(spec, ";")
	typ, name, ok := strings.Cut(fields[0], ":")
	if !ok {
		return nil, nil, fmt.Errorf("want TYPE:NAME")
	}
	hdr := &tar.Header{Name: unescape(name), Mode: 0o644, Format: tar.FormatPAX}
	opts := map[string]string{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, nil, fmt.Errorf("option %q: want KEY=VALUE", f)
		}
		opts[k] = unescape(v)
	}
	var content []byte
	switch typ {
	case "file":
		hdr.Typeflag = tar.TypeReg
		content = []byte(opts["content"])
		if from, ok := opts["from"]; ok {
			content = []byte(ts.ReadFile(from))
		}
		hdr.Size = int64(len(content))
	case "dir":
		hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
	case "symlink":
		hdr.Typeflag, hdr.Mode, hdr.Linkname = tar.TypeSymlink, 0o777, opts["target"]
	case "link":
		hdr.Typeflag, hdr.Linkname = tar.TypeLink, opts["target"]
	case "char":
		hdr.Typeflag, hdr.Devmajor, hdr.Devminor = tar.TypeChar, 1, 3
	case "block":
		hdr.Typeflag, hdr.Devmajor, hdr.Devminor = tar.TypeBlock, 7, 0
	case "fifo":
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil, nil, fmt.Errorf("unknown member type %q", typ)
	}
	if u, ok := opts["uid"]; ok {
		id, err := strconv.Atoi(u)
		if err != nil {
			return nil, nil, fmt.Errorf("uid %q: %v", u, err)
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = id, id, "user", "user"
	}
	if x, ok := opts["xattr"]; ok {
		name, value, _ := strings.Cut(x, ":")
		hdr.PAXRecords = map[string]string{"SCHILY.xattr." + name: value}
	}
	if t, ok := opts["mtime"]; ok {
		sec, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("mtime %q: %v", t, err)
		}
		hdr.ModTime = time.Unix(sec, 0)
	}
	if m, ok := opts["mode"]; ok {
		v, err := strconv.ParseInt(m, 8, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("mode %q: %v", m, err)
		}
		hdr.Mode = v
	}
	return hdr, content, nil
}

var (
	repeatRE = regexp.MustCompile(`<(\d+)\*([^>]*)>`)
	hexRE    = regexp.MustCompile(`\\x([0-9a-fA-F]{2})`)
)

// unescape expands <N*S> and \xHH.
func unescape(s string) string {
	s = repeatRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := repeatRE.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[1])
		return strings.Repeat(sub[2], n)
	})
	return hexRE.ReplaceAllStringFunc(s, func(m string) string {
		b, _ := strconv.ParseUint(m[2:], 16, 8)
		return string([]byte{byte(b)})
	})
}

// scriptUsage stops the script with the usage of a command, which cannot
// be negated, unless ok says its arguments are right.
func scriptUsage(ts *testscript.TestScript, neg, ok bool, usage string) {
	if neg || !ok {
		ts.Fatalf("usage: %s", usage)
	}
}

// cmdCorrupt inverts the byte at OFFSET of FILE; a negative OFFSET counts
// from the end.
//
//	corrupt FILE OFFSET
func cmdCorrupt(ts *testscript.TestScript, neg bool, args []string) {
	scriptUsage(ts, neg, len(args) == 2, "corrupt FILE OFFSET")
	p := ts.MkAbs(args[0])
	data, err := os.ReadFile(p)
	ts.Check(err)
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	if off < 0 {
		off += len(data)
	}
	if off < 0 || off >= len(data) {
		ts.Fatalf("corrupt: offset %s outside %s (%d bytes)", args[1], args[0], len(data))
	}
	data[off] ^= 0xff
	ts.Check(os.WriteFile(p, data, 0o644))
}

// cmdTruncate cuts FILE to SIZE bytes; a negative SIZE cuts that many
// bytes off the end.
//
//	truncate FILE SIZE
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	scriptUsage(ts, neg, len(args) == 2, "truncate FILE SIZE")
	p := ts.MkAbs(args[0])
	fi, err := os.Stat(p)
	ts.Check(err)
	size, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	if size < 0 {
		size += fi.Size()
	}
	if size < 0 || size > fi.Size() {
		ts.Fatalf("truncate: size %s outside %s (%d bytes)", args[1], args[0], fi.Size())
	}
	ts.Check(os.Truncate(p, size))
}

// cmdSetuid sets mode 6755 (setuid, setgid, rwxr-xr-x) on FILE, which the
// built-in chmod cannot.
//
//	setuid FILE
func cmdSetuid(ts *testscript.TestScript, neg bool, args []string) {
	scriptUsage(ts, neg, len(args) == 1, "setuid FILE")
	ts.Check(os.Chmod(ts.MkAbs(args[0]), 0o755|os.ModeSetuid|os.ModeSetgid))
}

// cmdMkfifo makes a named pipe.
//
//	mkfifo PATH
func cmdMkfifo(ts *testscript.TestScript, neg bool, args []string) {
	scriptUsage(ts, neg, len(args) == 1, "mkfifo PATH")
	ts.Check(mkfifo(ts.MkAbs(args[0])))
}

// cmdExits runs a command and checks its exit status, which "! exec"
// cannot tell apart: exits N olimage ARGS...
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	scriptUsage(ts, neg, len(args) >= 2, "exits N command [args...]")
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: %q is not a number", args[0])
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("exits: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
}

// cmdHardlink makes NEW a hard link of OLD: hardlink OLD NEW
func cmdHardlink(ts *testscript.TestScript, neg bool, args []string) {
	scriptUsage(ts, neg, len(args) == 2, "hardlink OLD NEW")
	ts.Check(os.Link(ts.MkAbs(args[0]), ts.MkAbs(args[1])))
}

// cmdSetxattr sets an extended attribute; \xHH in VALUE is the byte HH.
// Scripts setting security.* or trusted.* ones start with [!root] skip.
//
//	setxattr FILE NAME VALUE
func cmdSetxattr(ts *testscript.TestScript, neg bool, args []string) {
	scriptUsage(ts, neg, len(args) == 3, "setxattr FILE NAME VALUE")
	ts.Check(unix.Lsetxattr(ts.MkAbs(args[0]), args[1], []byte(unescape(args[2])), 0))
}
