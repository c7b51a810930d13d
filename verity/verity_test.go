package verity

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testenv"
)

// layout is data of blocks blocks, with random content in the listed
// block ranges and zeros (holes) elsewhere.
type layout struct {
	name   string
	blocks int64
	filled [][2]int64
}

var layouts = []layout{
	{"two blocks", 2, [][2]int64{{0, 1}}},
	{"one hash block, full", 128, [][2]int64{{3, 9}}},
	{"two hash blocks", 129, [][2]int64{{128, 129}}},
	{"all zeros, three levels", 128*128 + 1, nil},
	{"all zeros, two full levels", 128 * 128, nil},
	{"sparse, three levels", 3*128*128 + 77, [][2]int64{{0, 40}, {200, 201}, {128 * 128, 128*128 + 300}, {3 * 128 * 128, 3*128*128 + 77}}},
	{"content ending in a zero subtree", 128*128 + 128*5, [][2]int64{{1, 2}}},
}

// writeData writes l's data to a sparse file.
func writeData(t *testing.T, dir string, l layout) string {
	t.Helper()
	p := filepath.Join(dir, "data.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(uint64(l.blocks), 7))
	for _, r := range l.filled {
		b := make([]byte, (r[1]-r[0])*BlockSize)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(b, r[0]*BlockSize); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(l.blocks * BlockSize); err != nil {
		t.Fatal(err)
	}
	return p
}

var salt = bytes.Repeat([]byte{0xa5, 0x3c}, 16)

// TestMatchesVeritysetup checks the root hash and every byte of the tree
// olimage computes against veritysetup format's, and that veritysetup
// verify accepts the tree appended to the data at a hash offset.
func TestMatchesVeritysetup(t *testing.T) {
	testenv.Tool(t, "veritysetup")
	ctx := context.Background()
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			dir := t.TempDir()
			data := writeData(t, dir, l)
			f, err := os.Open(data)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tr, p, err := Compute(ctx, f, l.blocks, salt)
			if err != nil {
				t.Fatal(err)
			}
			// The same data streamed through Write and WriteZeros.
			st, _ := New(salt)
			raw, _ := os.ReadFile(data)
			for i := 0; i < len(raw); {
				k := min(len(raw)-i, 5000+i%3) // odd sizes: partial blocks
				if bytes.Count(raw[i:i+k], []byte{0}) == k {
					st.WriteZeros(int64(k))
				} else {
					st.Write(raw[i : i+k])
				}
				i += k
			}
			if sp, err := st.Finish(); err != nil || sp != p {
				t.Fatalf("streamed: got %+v, %v; want %+v", sp, err, p)
			}

			var tree bytes.Buffer
			if _, err := tr.WriteTo(&tree); err != nil {
				t.Fatal(err)
			}
			if int64(tree.Len()) != TreeSize(l.blocks) {
				t.Fatalf("tree is %d bytes, TreeSize says %d", tree.Len(), TreeSize(l.blocks))
			}
			sb := tree.Bytes()[:BlockSize]
			uuid := hex.EncodeToString(sb[offUUID : offUUID+16])
			uuid = uuid[:8] + "-" + uuid[8:12] + "-" + uuid[12:16] + "-" + uuid[16:20] + "-" + uuid[20:]
			hashFile := filepath.Join(dir, "hash.img")
			out, err := exec.Command("veritysetup", "format", data, hashFile, "--hash=sha256",
				"--data-block-size=4096", "--hash-block-size=4096", "--salt="+hex.EncodeToString(salt),
				"--uuid="+uuid, fmt.Sprintf("--data-blocks=%d", l.blocks)).CombinedOutput()
			if err != nil {
				t.Fatalf("veritysetup format: %v\n%s", err, out)
			}
			m := regexp.MustCompile(`Root hash:\s+([0-9a-f]+)`).FindSubmatch(out)
			if m == nil {
				t.Fatalf("no root hash in veritysetup format's output:\n%s", out)
			}
			if string(m[1]) != p.RootHash {
				t.Errorf("root hash %s, veritysetup format says %s", p.RootHash, m[1])
			}
			theirs, err := os.ReadFile(hashFile)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(theirs, tree.Bytes()) {
				t.Errorf("tree of %d bytes differs from veritysetup format's %d bytes", tree.Len(), len(theirs))
			}

			img := appendTree(t, data, tree.Bytes())
			p.HashOffset = l.blocks * BlockSize
			veritysetupVerify(t, img, p, true)
			if _, err := Check(ctx, openFile(t, img), fileSize(t, img), p); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func appendTree(t *testing.T, data string, tree []byte) string {
	t.Helper()
	f, err := os.OpenFile(data, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(tree); err != nil {
		t.Fatal(err)
	}
	return data
}

func veritysetupVerify(t *testing.T, img string, p Params, ok bool) {
	t.Helper()
	out, err := exec.Command("veritysetup", "verify", img, img, p.RootHash, fmt.Sprintf("--hash-offset=%d", p.HashOffset)).CombinedOutput()
	if ok && err != nil {
		t.Errorf("veritysetup verify refused: %v\n%s", err, out)
	}
	if !ok && err == nil {
		t.Errorf("veritysetup verify accepted a changed image:\n%s", out)
	}
}

func openFile(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestTampered flips one byte of data, of the tree and of the
// superblock, and truncates the tree: veritysetup verify and Check both
// refuse each, and Check says what failed.
func TestTampered(t *testing.T) {
	testenv.Tool(t, "veritysetup")
	ctx := context.Background()
	l := layouts[5]
	dataEnd := l.blocks * BlockSize
	cases := []struct {
		name    string
		change  func(t *testing.T, img string)
		want    string
		refused bool // by veritysetup verify too
	}{
		{"data byte", flipAt(5*BlockSize + 17), "root hash of the data is", true},
		{"data byte in a hole", flipAt(100 * BlockSize), "root hash of the data is", true},
		{"tree byte", flipAt(dataEnd + 3*BlockSize + 100), "hash block 2 at byte", true},
		{"superblock salt", flipAt(dataEnd + offSalt), "superblock at byte", true},
		{"truncated tree", func(t *testing.T, img string) {
			if err := os.Truncate(img, fileSize(t, img)-BlockSize); err != nil {
				t.Fatal(err)
			}
		}, "truncated", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := writeData(t, t.TempDir(), l)
			tr, p, err := Compute(ctx, openFile(t, img), l.blocks, salt)
			if err != nil {
				t.Fatal(err)
			}
			var tree bytes.Buffer
			tr.WriteTo(&tree)
			appendTree(t, img, tree.Bytes())
			p.HashOffset = dataEnd
			c.change(t, img)
			veritysetupVerify(t, img, p, !c.refused)
			_, err = Check(ctx, openFile(t, img), fileSize(t, img), p)
			if err == nil || !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check: got %v, want an ErrMismatch saying %q", err, c.want)
			}
		})
	}
}

func flipAt(off int64) func(t *testing.T, img string) {
	return func(t *testing.T, img string) {
		t.Helper()
		f, err := os.OpenFile(img, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 1)
		f.ReadAt(b, off)
		b[0] ^= 0x40
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

// TestZerosCostNothing: a tree over 2^40 bytes of zeros is computed
// without touching each block; it would take hours otherwise.
func TestZerosCostNothing(t *testing.T) {
	tr, _ := New(salt)
	tr.Write(bytes.Repeat([]byte{1}, BlockSize))
	tr.WriteZeros(1 << 40)
	p, err := tr.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if p.DataBlocks != 1+1<<40/BlockSize {
		t.Errorf("data blocks %d, want %d", p.DataBlocks, 1+1<<40/BlockSize)
	}
	// 2113671 blocks: superblock, 1, 2, 129, 16385, 2097153
	if got, want := TreeSize(p.DataBlocks), int64(8657596416); got != want {
		t.Errorf("TreeSize %d, want %d", got, want)
	}
}

func TestFinishRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		data int
		want string
	}{
		{"one block", BlockSize, "want 2 or more"},
		{"partial block", 2*BlockSize + 1, "not a multiple"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, _ := New(nil)
			tr.Write(make([]byte, c.data))
			if _, err := tr.Finish(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
}

func FuzzParseSuperblock(f *testing.F) {
	tr, _ := New(salt)
	tr.WriteZeros(3 * BlockSize)
	tr.Finish()
	f.Add(tr.superblock()[:sbSize])
	f.Add([]byte("verity\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err == nil && (sb.DataBlocks < 2 || len(sb.Salt) > 256 || sb.Algorithm != Algorithm) {
			t.Fatalf("accepted %+v", sb)
		}
	})
}
