package olimage_test

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
)

const module = "github.com/internetarchive/olimage/"

// TestLayers checks the arrows of doc.go that keep the layers apart,
// directly and through other packages:
//   - what reads an image, and the model both sides share, depend on
//     nothing that builds an image from a fleet or talks to a registry: a
//     reader of images carries no fleet, overlay, policy, builder or
//     registry code, and a change to those cannot break it;
//   - a fleet's roles, their overlays and the content policy come before
//     the tree's JSON form (manifest) and the image.
func TestLayers(t *testing.T) {
	readSide := []string{
		"ext4/reader", "image", "diff", "verify", "extract", "activate", "sbom", // image file -> ...
		"tree", "manifest", "glob", // the model both sides share
	}
	// operand is where the two sides meet, for the commands: it opens
	// roles and registry references as well as images.
	buildSide := []string{"roles", "overlays", "policy", "builder", "ext4", "artifact", "operand"}
	fleetSide := []string{"roles", "overlays", "policy"}
	rules := []struct {
		from, not []string
		why       string
	}{
		{readSide, buildSide, "the read side must not reach the build side or the registry"},
		{fleetSide, []string{"manifest", "builder", "ext4", "artifact", "operand"}, "roles and overlays come before the manifest and the image"},
	}
	imports := importGraph(t, append(readSide, fleetSide...))
	for _, r := range rules {
		for _, from := range r.from {
			for _, path := range pathsTo(imports, module+from, r.not) {
				t.Errorf("%s depends on %s (%s): %s", from, path[len(path)-1], strings.Join(path, " -> "), r.why)
			}
		}
	}
}

// TestDocNamesEveryPackage checks that doc.go, the map of the packages,
// names each of them.
func TestDocNamesEveryPackage(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testenv.Tool(t, "go"), "list", "./...").Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		name, ok := strings.CutPrefix(p, module)
		if !ok {
			continue // the root package, doc.go's own
		}
		// A name, not the start of a longer one (ext4 in ext4/reader).
		if !regexp.MustCompile(`(^|[^\w/])` + regexp.QuoteMeta(name) + `($|[^\w/])`).Match(doc) {
			t.Errorf("doc.go does not name package %s: put it on an arrow of the map, or among the support packages", name)
		}
	}
}

// importGraph is `go list -deps` of pkgs: every package they reach, in
// this module, with its imports in this module, by import path.
func importGraph(t *testing.T, pkgs []string) map[string][]string {
	t.Helper()
	args := []string{"list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`}
	for _, p := range pkgs {
		args = append(args, "./"+p)
	}
	cmd := exec.Command(testenv.Tool(t, "go"), args...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("go %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	graph := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], module) {
			continue
		}
		var own []string
		for _, im := range f[1:] {
			if strings.HasPrefix(im, module) {
				own = append(own, im)
			}
		}
		graph[f[0]] = own
	}
	return graph
}

// pathsTo returns, for each package of targets (relative to the module)
// that from reaches, one shortest chain of imports from from to it, each
// package relative to the module.
func pathsTo(imports map[string][]string, from string, targets []string) [][]string {
	parent := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, im := range imports[p] {
			if _, seen := parent[im]; !seen {
				parent[im] = p
				queue = append(queue, im)
			}
		}
	}
	var paths [][]string
	for _, target := range targets {
		if _, ok := parent[module+target]; !ok {
			continue
		}
		var path []string
		for p := module + target; p != ""; p = parent[p] {
			path = append(path, strings.TrimPrefix(p, module))
		}
		slices.Reverse(path)
		paths = append(paths, path)
	}
	return paths
}
