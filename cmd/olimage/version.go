package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time by make build (-ldflags "-X
// main.version=$(git describe)"). It is recorded in every manifest, so it
// must not vary between builds of one binary.
var version = ""

// olimageVersion is the link-time version, else the module version go
// stamps into the binary (a tag, or a pseudo-version of the commit with
// +dirty for local changes), else "dev" (go test, go run without VCS).
func olimageVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// versionText is what olimage --version and olimage version print.
func versionText() string {
	s := "olimage " + olimageVersion()
	var rev, when string
	modified := false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			switch kv.Key {
			case "vcs.revision":
				rev = kv.Value
			case "vcs.time":
				when = kv.Value
			case "vcs.modified":
				modified = kv.Value == "true"
			}
		}
	}
	if rev != "" {
		s += "\ncommit " + rev
		if modified {
			s += " (with local changes)"
		}
		if when != "" {
			s += ", " + when
		}
	}
	return s + fmt.Sprintf("\n%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print olimage's version, commit and Go version",
		Long: `Print the version of this olimage binary (the one recorded in the manifest
of every image it builds), the commit it was built from and the Go
toolchain. olimage --version prints the same.`,
		Example: `  olimage version
  olimage --version`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVersion(e.stdout)
		},
	}
}

func runVersion(out io.Writer) error {
	_, err := io.WriteString(out, versionText())
	return err
}
