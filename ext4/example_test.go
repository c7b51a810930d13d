package ext4_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/internetarchive/olimage/ext4"
	"github.com/internetarchive/olimage/tree"
)

type inline []byte

func (b inline) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }

func Example() {
	motd := inline("welcome\n")
	sum := sha256.Sum256(motd)
	t, err := tree.New([]*tree.Entry{
		(&tree.Entry{Type: tree.Dir, Mode: 0o755}).WithPath("etc"),
		(&tree.Entry{Type: tree.File, Mode: 0o644, Size: int64(len(motd)), Digest: sum, Content: motd}).WithPath("etc/motd"),
	})
	if err != nil {
		log.Fatal(err)
	}
	l, err := ext4.Plan(t, ext4.Options{Label: "data", Time: 1700000000, Journal: true, Headroom: 8 << 20})
	if err != nil {
		log.Fatal(err) // a *ext4.NoSpaceError says how big the image must be
	}
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "data.img"))
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if _, err := l.WriteTo(f); err != nil { // a new file: zero runs become holes
		log.Fatal(err)
	}
	fmt.Println(l.Size()>>20, "MiB")
	// Output: 13 MiB
}
