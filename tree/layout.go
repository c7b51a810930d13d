package tree

// Paths with a fixed meaning on every volume, relative to its root.
const (
	// OlimageDir is where an image keeps olimage's own records (its
	// manifest); no overlay supplies it.
	OlimageDir = ".olimage"
	// DeploysDir holds every deployed service's bins:
	// DeploysDir/SERVICE/BIN, the active one linked from the service's
	// path.
	DeploysDir = "opt/openlibrary/deploys"
)

// Deploy is the history of one deployed service in a tree: its bins
// under DeploysDir/SERVICE, newest first, so that "the newest N bins"
// means the same thing in every later release. overlays records it as it
// merges; an image's manifest and a plan carry it.
type Deploy struct {
	Service string      `json:"service"`
	Bins    []DeployBin `json:"bins"`
}

// DeployBin is one bin of a deploy history.
type DeployBin struct {
	Bin string `json:"bin"`
	// From names the previous release's image (relative to the fleet
	// directory) that a bin carried over as history was copied from; ""
	// for a bin deployed by this image's own role.
	From string `json:"from,omitempty"`
}
