package tarread

// Every test binary defines -update, so that go test ./... -update runs.
import _ "github.com/internetarchive/olimage/internal/golden"
