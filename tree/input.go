package tree

// Input is one overlay a tree was merged from: overlays records it as it
// merges, and an image's manifest and a plan carry it so that a tree can
// be traced to its sources.
type Input struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`             // dir, tar, files or deploy
	Source  string `json:"source,omitempty"` // relative to the fleet directory
	Digest  string `json:"digest"`           // sha256 of the overlay's sorted listing
	Entries int    `json:"entries"`
}
