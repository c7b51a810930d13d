package overlays

// Registers -update, so that `go test ./... -update` reaches every package.
import _ "github.com/internetarchive/olimage/internal/golden"
