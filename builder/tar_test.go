package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/internetarchive/olimage/internal/testenv"
	"github.com/internetarchive/olimage/internal/testfs"
	"github.com/internetarchive/olimage/operand"
	"github.com/internetarchive/olimage/verify"
)

// A real archive's members are older than the fleet epoch: the image and
// its manifest must agree on their times, or verify fails every build.
func TestBuildOldTarMembersVerify(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	old := time.Date(2001, 9, 9, 1, 46, 40, 0, time.UTC)
	for _, h := range []*tar.Header{
		{Name: "opt/app/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: old},
		{Name: "opt/app/run", Typeflag: tar.TypeReg, Mode: 0o755, Size: 3, ModTime: old},
		{Name: "opt/app/link", Typeflag: tar.TypeSymlink, Linkname: "run", ModTime: old},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("hi\n"))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	testfs.WriteFiles(t, dir, map[string]string{
		"olimage.yaml": "fleet: t\nepoch: 2024-01-01T00:00:00Z\n",
		"roles/r.yaml": "overlays: [{name: app, tar: app.tar}]\n",
		"app.tar":      buf.String(),
	})
	f, r := loadRole(t, dir, "r")
	res, err := Build(context.Background(), f, r, Options{Output: t.TempDir(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Fsck(t, res.Image)
	src, err := operand.OpenImage(context.Background(), res.Image, operand.NoTree)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rep, err := verify.Image(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		t.Errorf("verify: %s", f)
	}
}
