package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/internetarchive/olimage/manifest"
	"github.com/internetarchive/olimage/operand"
	"github.com/internetarchive/olimage/sbom"
)

type sbomOptions struct{}

func newSbomCmd(e *env) *cobra.Command {
	var opts sbomOptions
	return &cobra.Command{
		Use:   "sbom IMAGE|ROLE",
		Short: "Write the software bill of materials of an image or a role (CycloneDX 1.5 JSON)",
		Long: `Write a CycloneDX 1.5 JSON bill of materials to stdout: the volume (role,
fleet version, tree digest and overlays as properties), each deploy under
/opt/openlibrary/deploys with its revision and whether the service's link
points at it, and each Python distribution of the volume's virtual
environments (site-packages/*.dist-info/METADATA: Name and Version, with a
pkg:pypi package URL). An IMAGE is read without mounting; a ROLE is merged
from the fleet as a build would. The same input gives the same bytes: the
serial number derives from the role and tree digest, the time stamp is
the fleet epoch.`,
		Example: `  olimage sbom out/ol-web.img > ol-web.cdx.json
  olimage -f examples/openlibrary sbom ol-web | jq -r '.components[] | "\(.name) \(.version)"'`,
		Args: exactArgs(1, "IMAGE|ROLE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSbom(e, opts, args[0], e.stdout)
		},
	}
}

func runSbom(e *env, _ sbomOptions, name string, out io.Writer) error {
	v := sbom.Volume{Olimage: olimageVersion()}
	if operand.IsImage(name) {
		src, err := operand.OpenImage(e.ctx, name, operand.Listing)
		if err != nil {
			return err
		}
		defer src.Close()
		m, _, err := src.EmbeddedManifest()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if m == nil {
			return hintError{fmt.Errorf("%s: no manifest in the image (.olimage/manifest.json)", name), "olimage sbom describes images olimage built, and roles: give one of those"}
		}
		v.Fleet, v.FleetVersion, v.Role, v.Epoch, v.TreeDigest, v.Inputs = m.Fleet, m.FleetVersion, m.Role, m.Epoch, m.TreeDigest, m.Inputs
		v.Tree, v.Open = src.Tree(), src.FS().Open
	} else {
		f, r, res, err := e.merge(name)
		if err != nil {
			return err
		}
		defer res.Close()
		v.Fleet, v.FleetVersion, v.Role, v.Epoch, v.TreeDigest, v.Inputs = f.Name, f.Version, r.Name, res.Epoch, manifest.TreeDigest(res.Tree), res.Inputs
		v.Tree = res.Tree
		v.Open = func(p string) (io.ReadCloser, error) {
			e := res.Tree.Get(p)
			if e == nil || e.Content == nil {
				return nil, fmt.Errorf("%s: no content", p)
			}
			return e.Content.Open()
		}
	}
	b, err := sbom.BOM(v)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return buffered(out, func(w io.Writer) error { return sbom.Write(w, b) })
}
