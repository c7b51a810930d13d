package image

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/internetarchive/olimage/internal/testfs"
)

// pair writes an image and sidecar pair, and temporaries of a new pair,
// and returns the image path and the temporaries' names.
func pair(t *testing.T) (img, imageTmp, sidecarTmp string) {
	t.Helper()
	dir := t.TempDir()
	img = filepath.Join(dir, "r.img")
	imageTmp, sidecarTmp = ".r.img.tmp-1", ".r.img.manifest.json.tmp-2"
	for name, data := range map[string]string{
		"r.img": "old image", "r.img.manifest.json": "old sidecar",
		imageTmp: "new image", sidecarTmp: "new sidecar",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return img, imageTmp, sidecarTmp
}

// A decided replacement is finished by a read, from any point: nothing
// renamed yet, or the image renamed but not the sidecar.
func TestSettleFinishesReplacement(t *testing.T) {
	for _, imageDone := range []bool{false, true} {
		img, imageTmp, sidecarTmp := pair(t)
		dir := filepath.Dir(img)
		if imageDone {
			if err := os.Rename(filepath.Join(dir, imageTmp), img); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(intentPath(img), formatIntent(imageTmp, sidecarTmp), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := Settle(img + SidecarSuffix); err != nil {
			t.Fatal(err)
		}
		if got, got2 := testfs.Read(t, img), testfs.Read(t, img+SidecarSuffix); got != "new image" || got2 != "new sidecar" {
			t.Errorf("image renamed before: %v: got %q and %q, want the new pair", imageDone, got, got2)
		}
		if got := strings.Join(testfs.Names(t, dir), " "); got != "r.img r.img.manifest.json" {
			t.Errorf("image renamed before: %v: directory holds %s", imageDone, got)
		}
	}
}

// Without an intent, a read writes nothing, not even a lock file.
func TestSettleWithoutIntent(t *testing.T) {
	img, _, _ := pair(t)
	before := strings.Join(testfs.Names(t, filepath.Dir(img)), " ")
	if err := Settle(img); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(testfs.Names(t, filepath.Dir(img)), " "); got != before {
		t.Errorf("directory holds %s, want %s", got, before)
	}
}

// An intent naming files other than the target's temporaries renames
// nothing, and says which file it is.
func TestPlantedIntentRefused(t *testing.T) {
	for _, intent := range []string{
		"olimage-commit 1\nimage ../../etc/passwd\nsidecar .r.img.manifest.json.tmp-2\n",
		"olimage-commit 1\nimage .r.img.tmp-1\nsidecar .other.img.manifest.json.tmp-2\n",
		"olimage-commit 1\nimage .r.img.tmp-x\nsidecar .r.img.manifest.json.tmp-2\n",
		"olimage-commit 2\nimage .r.img.tmp-1\nsidecar .r.img.manifest.json.tmp-2\n",
	} {
		img, _, _ := pair(t)
		if err := os.WriteFile(intentPath(img), []byte(intent), 0o644); err != nil {
			t.Fatal(err)
		}
		err := Settle(img)
		if !errors.Is(err, ErrIntent) || !strings.Contains(err.Error(), intentPath(img)) {
			t.Errorf("intent %q: got %v, want ErrIntent naming %s", intent, err, intentPath(img))
		}
		if got := testfs.Read(t, img); got != "old image" {
			t.Errorf("intent %q: image %q, want the old one", intent, got)
		}
	}
	// A symlink in its place is not followed.
	img, _, _ := pair(t)
	os.Symlink("/dev/zero", intentPath(img))
	if err := Settle(img); !errors.Is(err, ErrIntent) {
		t.Errorf("intent a symlink to /dev/zero: got %v, want ErrIntent", err)
	}
}

// Open finishes a replacement before it reads.
func TestOpenSettles(t *testing.T) {
	img, imageTmp, sidecarTmp := pair(t)
	os.WriteFile(filepath.Join(filepath.Dir(img), imageTmp), make([]byte, 4096), 0o644)
	os.WriteFile(intentPath(img), formatIntent(imageTmp, sidecarTmp), 0o644)
	if _, err := Open(img); !errors.Is(err, ErrNoFS) {
		t.Fatalf("got %v, want ErrNoFS of the new (zero) image", err)
	}
	if got := testfs.Read(t, img+SidecarSuffix); got != "new sidecar" {
		t.Errorf("sidecar %q, want the new one", got)
	}
}

// LockTarget removes the target's stale temporaries and no one else's.
func TestLockTargetCleans(t *testing.T) {
	img, _, _ := pair(t)
	dir := filepath.Dir(img)
	for _, n := range []string{".r.img.commit.tmp-3", ".r.img.tmp-9x", ".other.img.tmp-4", ".r.img.tmp-5.img.tmp-6"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	l, err := LockTarget(img)
	if err != nil {
		t.Fatal(err)
	}
	l.Unlock()
	want := ".other.img.tmp-4 .r.img.tmp-5.img.tmp-6 .r.img.tmp-9x r.img r.img.manifest.json"
	if got := strings.Join(testfs.Names(t, dir), " "); got != want {
		t.Errorf("directory holds %s, want %s", got, want)
	}
}

func FuzzParseIntent(f *testing.F) {
	f.Add([]byte(formatIntent(".r.img.tmp-1", ".r.img.manifest.json.tmp-2")))
	f.Add([]byte("olimage-commit 1\nimage .r.img.tmp-\nsidecar .r.img.manifest.json.tmp-2\n"))
	f.Add([]byte("olimage-commit 1\nimage /etc/passwd\nsidecar x\n"))
	f.Add([]byte("olimage-commit 1\n\n\n\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, b, err := parseIntent(data, "r.img")
		if err != nil {
			if !errors.Is(err, ErrIntent) {
				t.Fatalf("error %v is not ErrIntent", err)
			}
			return
		}
		if !isTemp(a, "r.img") || !isTemp(b, "r.img"+SidecarSuffix) || strings.ContainsAny(a+b, "/\x00") {
			t.Fatalf("accepted %q and %q, not temporaries of r.img and its sidecar", a, b)
		}
		if string(formatIntent(a, b)) != string(data) {
			t.Fatalf("accepted %q, which is not the intent of %q and %q", data, a, b)
		}
	})
}

// WriteTemp's file holds the data, is readable by all, and is named as a
// temporary of path, so that the next build of path removes it if left.
func TestWriteTemp(t *testing.T) {
	img := filepath.Join(t.TempDir(), "r.img")
	tmp, err := WriteTemp(img, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if got := testfs.Read(t, tmp); got != "data" || fi.Mode().Perm() != 0o644 || filepath.Dir(tmp) != filepath.Dir(img) || !isTemp(filepath.Base(tmp), "r.img") {
		t.Errorf("got %s, mode %v, holding %q; want a temporary of %s, mode 0644, holding %q", tmp, fi.Mode().Perm(), got, img, "data")
	}
	if _, err := WriteTemp(filepath.Join(img, "missing", "x"), nil); err == nil {
		t.Error("WriteTemp into a missing directory: no error")
	}
}
