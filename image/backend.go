package image

import (
	"io"
	"io/fs"
	"time"
)

// readerFile presents an image's bytes as the backend.File go-diskfs's
// GPT reader wants, without giving it the underlying file to write.
type readerFile struct{ *io.SectionReader }

func newReaderFile(img *File) readerFile {
	return readerFile{io.NewSectionReader(img.r, 0, img.Size)}
}

func (r readerFile) Close() error { return nil }

func (r readerFile) Stat() (fs.FileInfo, error) { return info{r.Size()}, nil }

type info struct{ size int64 }

func (i info) Name() string       { return "image" }
func (i info) Size() int64        { return i.size }
func (i info) Mode() fs.FileMode  { return 0o444 }
func (i info) ModTime() time.Time { return time.Time{} }
func (i info) IsDir() bool        { return false }
func (i info) Sys() any           { return nil }
