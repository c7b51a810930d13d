package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// imageExts are the file name endings completed for IMAGE arguments.
var imageExts = []string{"img", "zst", "gz", "raw", "json"}

// completeRoles completes the first n arguments with the fleet's role
// names (abstract ones too if abstract), then nothing.
func completeRoles(e *env, n int, abstract bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return roleNames(e, abstract), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeImages completes image files for the first n arguments, then
// directories (for extract's DIR).
func completeImages(n int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) >= n {
			return nil, cobra.ShellCompDirectiveFilterDirs
		}
		return imageExts, cobra.ShellCompDirectiveFilterFileExt
	}
}

// completeImagesOrRoles completes diff's sides: roles and image files.
func completeImagesOrRoles(e *env) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) >= 2 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return roleNames(e, false), cobra.ShellCompDirectiveDefault
	}
}

func roleNames(e *env, abstract bool) []cobra.Completion {
	f, _ := e.loadFleet()
	if f == nil {
		return nil
	}
	var out []cobra.Completion
	for _, n := range f.RoleNames(abstract) {
		out = append(out, cobra.CompletionWithDesc(n, f.Roles[n].Description))
	}
	return out
}

// setCompletions attaches argument completion to the commands that take
// roles or images, by name, so that commands added later need no change
// here to keep working.
func setCompletions(e *env, root *cobra.Command) {
	for _, c := range root.Commands() {
		switch c.Name() {
		case "plan", "explain":
			c.ValidArgsFunction = completeRoles(e, 1, false)
		case "build":
			c.ValidArgsFunction = completeRoles(e, 1<<10, false)
		case "diff":
			c.ValidArgsFunction = completeImagesOrRoles(e)
		case "ls", "cat", "inspect", "verify", "fstab", "mount-unit":
			c.ValidArgsFunction = completeImages(1)
		case "extract":
			c.ValidArgsFunction = completeImages(1)
		}
	}
}

// newManCmd writes man pages for every command; make man runs it. Hidden:
// it is for packaging, not for users.
func newManCmd(e *env, root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write man pages (section 1) for every command into DIR",
		Hidden: true,
		Args:   exactArgs(1, "DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			root.DisableAutoGenTag = true // the pages stay the same from build to build
			hdr := &doc.GenManHeader{Title: "OLIMAGE", Section: "1", Source: "olimage " + olimageVersion(), Manual: "olimage manual"}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		},
	}
}
