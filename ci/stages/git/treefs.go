package git

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"sort"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// treeFS is a read-only fs.FS over a commit's tree: edits read the few files they need straight from
// the object store, with no checkout. In a partial clone, the trees and blobs it reads are fetched
// as they are read.
type treeFS struct {
	objs *objects
	root *object.Tree
	when time.Time
}

func newTreeFS(c *object.Commit, objs *objects) (*treeFS, error) {
	t, err := objs.tree(c.TreeHash)
	if err != nil {
		return nil, err
	}
	return &treeFS{objs: objs, root: t, when: c.Committer.When}, nil
}

func (t *treeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return &treeDir{info: t.info(".", filemode.Dir, 0), tree: t.root, fs: t}, nil
	}
	e, err := t.objs.entry(t.root.Hash, name)
	if err != nil {
		if errors.Is(err, object.ErrEntryNotFound) {
			err = fs.ErrNotExist
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	switch {
	case e.Mode == filemode.Dir:
		sub, err := t.objs.tree(e.Hash)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &treeDir{info: t.info(path.Base(name), e.Mode, 0), tree: sub, fs: t}, nil
	case e.Mode.IsFile():
		b, err := t.objs.blob(e.Hash)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		r, err := b.Reader()
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		defer r.Close()
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: name, Err: err}
		}
		return &treeFile{info: t.info(path.Base(name), e.Mode, b.Size), Reader: bytes.NewReader(data)}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist} // submodules
}

func (t *treeFS) info(name string, mode filemode.FileMode, size int64) fileInfo {
	return fileInfo{name: name, mode: mode, size: size, when: t.when}
}

type fileInfo struct {
	name string
	mode filemode.FileMode
	size int64
	when time.Time
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) ModTime() time.Time { return i.when }
func (i fileInfo) IsDir() bool        { return i.mode == filemode.Dir }
func (i fileInfo) Sys() any           { return nil }
func (i fileInfo) Mode() fs.FileMode {
	m, _ := i.mode.ToOSFileMode()
	return m
}
func (i fileInfo) Type() fs.FileMode { return i.Mode().Type() }

// dirEntry is a directory listing's entry; Info looks up the blob's size only when asked.
type dirEntry struct {
	fileInfo
	fs    *treeFS
	entry object.TreeEntry
}

func (d dirEntry) Info() (fs.FileInfo, error) {
	if d.entry.Mode.IsFile() {
		b, err := d.fs.objs.blob(d.entry.Hash)
		if err != nil {
			return nil, err
		}
		d.size = b.Size
	}
	return d.fileInfo, nil
}

type treeFile struct {
	info fileInfo
	*bytes.Reader
}

func (f *treeFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *treeFile) Close() error               { return nil }

type treeDir struct {
	info fileInfo
	tree *object.Tree
	fs   *treeFS
	read int
	// sorted holds the entries in name order once listing starts.
	sorted []object.TreeEntry
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: fs.ErrInvalid}
}
func (d *treeDir) Close() error { return nil }

// ReadDir lists the directory sorted by name (git orders a directory "a" as "a/").
func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.read == 0 {
		d.sorted = append([]object.TreeEntry(nil), d.tree.Entries...)
		sort.Slice(d.sorted, func(i, j int) bool { return d.sorted[i].Name < d.sorted[j].Name })
	}
	rest := d.sorted[d.read:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && n < len(rest) {
		rest = rest[:n]
	}
	out := make([]fs.DirEntry, 0, len(rest))
	for _, e := range rest {
		out = append(out, dirEntry{fileInfo: fileInfo{name: e.Name, mode: e.Mode, when: d.info.when}, fs: d.fs, entry: e})
	}
	d.read += len(rest)
	return out, nil
}
