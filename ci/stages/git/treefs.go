package git

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// treeFS is a read-only fs.FS over a commit's tree: edits read the few files they need straight from
// the object store, with no checkout.
// In a partial clone a blob may be missing: missing is asked to fetch it, once, before it is read.
type treeFS struct {
	root    *object.Tree
	when    time.Time
	missing func(plumbing.Hash) error
}

func newTreeFS(c *object.Commit, missing func(plumbing.Hash) error) (*treeFS, error) {
	t, err := c.Tree()
	if err != nil {
		return nil, err
	}
	return &treeFS{root: t, when: c.Committer.When, missing: missing}, nil
}

// file returns the blob of a tree entry, fetching it first if it is missing.
func (t *treeFS) file(tree *object.Tree, e *object.TreeEntry) (*object.File, error) {
	f, err := tree.TreeEntryFile(e)
	if errors.Is(err, plumbing.ErrObjectNotFound) && t.missing != nil {
		if ferr := t.missing(e.Hash); ferr != nil {
			return nil, ferr
		}
		f, err = tree.TreeEntryFile(e)
	}
	return f, err
}

func (t *treeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return &treeDir{info: t.info(".", filemode.Dir, 0), tree: t.root, fs: t}, nil
	}
	entry, err := t.root.FindEntry(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	switch {
	case entry.Mode == filemode.Dir:
		sub, err := t.root.Tree(name)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &treeDir{info: t.info(path.Base(name), entry.Mode, 0), tree: sub, fs: t}, nil
	case entry.Mode.IsFile():
		f, err := t.file(t.root, entry)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		r, err := f.Reader()
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &treeFile{info: t.info(path.Base(name), entry.Mode, f.Size), ReadCloser: r}, nil
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
	dir   *treeDir
	entry object.TreeEntry
}

func (d dirEntry) Info() (fs.FileInfo, error) {
	if d.entry.Mode.IsFile() {
		f, err := d.dir.fs.file(d.dir.tree, &d.entry)
		if err != nil {
			return nil, err
		}
		d.size = f.Size
	}
	return d.fileInfo, nil
}

type treeFile struct {
	info fileInfo
	io.ReadCloser
}

func (f *treeFile) Stat() (fs.FileInfo, error) { return f.info, nil }

type treeDir struct {
	info fileInfo
	tree *object.Tree
	fs   *treeFS
	read int
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: fs.ErrInvalid}
}
func (d *treeDir) Close() error { return nil }

// ReadDir lists the directory in git's order, which for the names in a tree is sorted order.
func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.tree.Entries[d.read:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && n < len(rest) {
		rest = rest[:n]
	}
	out := make([]fs.DirEntry, 0, len(rest))
	for _, e := range rest {
		out = append(out, dirEntry{fileInfo: fileInfo{name: e.Name, mode: e.Mode, when: d.info.when}, dir: d, entry: e})
	}
	d.read += len(rest)
	return out, nil
}
