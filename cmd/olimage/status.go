package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/activate"
	"github.com/internetarchive/olimage/manifest"
)

type statusOptions struct {
	root   string
	volume string
	json   bool
}

func newStatusCmd(e *env) *cobra.Command {
	var opts statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show which image is active and whether its links are in place",
		Long: `Read the activation journal (ROOT/var/lib/olimage/journal.json) and print
the active image (role, UUID, tree digest, volume) and every link activate
made, with its state: ok (the symlink is in place), missing (nothing is
there), wrong (something else is there). It also checks that the volume
mounted at --volume (default /1, as for activate) holds the active image
and that every link of its plan is made (inactive: the plan names it, the
journal does not); --volume '' skips that check. A file activate wrote (a
unit file) shows as (file). For each deployed service of the volume, a
line

  deploy  SERVICE  BIN (the image's | switched from BIN; bins: BIN...)

says which bin its active link names and which bins the image carries
('olimage switch' changes it). For each secret the volume's role declares,
a line

  secret  PATH  STATE [-> /etc/olimage/secrets/ROLE/PATH]

says whether it is in place with its owner and mode: ok, missing (neither
at PATH nor in /etc/olimage/secrets/ROLE), wrong (another owner, mode or
type, there or in the VM's copy) or unlinked (only the VM's copy is there;
activate links it).

Exits 1, with a line saying why, when anything is not in place: no image
active, nothing olimage built mounted at the volume, another image
mounted there, a link missing or wrong, a secret not in place, or an
interrupted run (the next activate or deactivate completes it). --json prints the document
olimage.status/v1 (docs/json.md).`,
		Example: `  olimage status                      # the volume at /1, on this machine
  olimage status --root /mnt/vm --json
  olimage status --volume ''          # only the journal's links`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatus(e, opts, e.stdout)
		},
	}
	cmd.Flags().StringVar(&opts.root, "root", "/", "the root file system")
	cmd.Flags().StringVar(&opts.volume, "volume", manifest.DefaultMount, "where the volume is mounted, as seen from --root ('' to skip its check)")
	cmd.Flags().BoolVar(&opts.json, "json", false, "print JSON (schema olimage.status/v1)")
	return cmd
}

func runStatus(e *env, opts statusOptions, out io.Writer) error {
	st, err := activate.ReadStatus(activate.Options{Root: opts.root, Volume: opts.volume})
	if err != nil {
		return activationError(err)
	}
	if opts.json {
		if err := writeJSON(out, st); err != nil {
			return err
		}
	} else {
		if img := st.Image; img != nil {
			fmt.Fprintf(out, "active: %s %s tree %s from %s\n", img.Role, img.UUID, short(img.Tree), img.Volume)
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		for _, l := range st.Links {
			if l.File {
				fmt.Fprintf(tw, "%s\t/%s\t(file)\n", l.State, l.Path)
				continue
			}
			fmt.Fprintf(tw, "%s\t/%s\t-> %s\n", l.State, l.Path, l.Target)
		}
		for _, d := range st.Deploys {
			note := "the image's"
			if d.Bin != d.Default {
				note = "switched from " + d.Default
			}
			fmt.Fprintf(tw, "deploy\t%s\t%s (%s; bins: %s)\n", d.Service, d.Bin, note, strings.Join(d.Bins, " "))
		}
		for _, sec := range st.Secrets {
			link := ""
			if sec.Link != "" {
				link = " -> " + sec.Link
			}
			fmt.Fprintf(tw, "secret\t/%s\t%s%s\n", sec.Path, sec.State, link)
		}
		tw.Flush()
		for _, f := range st.Findings {
			fmt.Fprintln(out, f)
		}
		if st.OK() {
			secrets := ""
			switch n := len(st.Secrets); n {
			case 0:
			case 1:
				secrets = ", 1 secret"
			default:
				secrets = fmt.Sprintf(", %d secrets", n)
			}
			fmt.Fprintf(out, "ok: %d links%s in place\n", len(st.Links), secrets)
		}
	}
	if !st.OK() {
		return errFindings
	}
	return nil
}
