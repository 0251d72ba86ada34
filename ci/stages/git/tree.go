package git

import (
	"fmt"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// writeTree stores a copy of tree with files replaced or added (slash paths relative to the tree) and
// returns its hash together with every object it had to create (the new trees and blobs), which is
// exactly what a push has to send.
func writeTree(s storer.EncodedObjectStorer, objs *objects, tree *object.Tree, files map[string][]byte) (plumbing.Hash, []plumbing.Hash, error) {
	var created []plumbing.Hash
	h, err := writeSubtree(s, objs, tree, files, &created)
	return h, created, err
}

func writeSubtree(s storer.EncodedObjectStorer, objs *objects, tree *object.Tree, files map[string][]byte, created *[]plumbing.Hash) (plumbing.Hash, error) {
	// Split the changes into this level's files and the subdirectories' changes.
	here := map[string][]byte{}
	below := map[string]map[string][]byte{}
	for p, b := range files {
		dir, rest, nested := strings.Cut(p, "/")
		if !nested {
			here[p] = b
			continue
		}
		if below[dir] == nil {
			below[dir] = map[string][]byte{}
		}
		below[dir][rest] = b
	}

	var entries []object.TreeEntry
	if tree != nil {
		entries = append(entries, tree.Entries...)
	}
	index := map[string]int{}
	for i, e := range entries {
		index[e.Name] = i
	}
	set := func(name string, mode filemode.FileMode, h plumbing.Hash) {
		if i, ok := index[name]; ok {
			entries[i].Hash, entries[i].Mode = h, mode
			return
		}
		index[name] = len(entries)
		entries = append(entries, object.TreeEntry{Name: name, Mode: mode, Hash: h})
	}

	for name, content := range here {
		h, err := writeBlob(s, content)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		mode := filemode.Regular
		if i, ok := index[name]; ok {
			if entries[i].Mode == filemode.Dir || entries[i].Mode == filemode.Submodule {
				return plumbing.ZeroHash, fmt.Errorf("%s is a directory", name)
			}
			mode = entries[i].Mode // keep executable bits
		}
		*created = append(*created, h)
		set(name, mode, h)
	}
	for dir, sub := range below {
		var subtree *object.Tree
		if i, ok := index[dir]; ok {
			if entries[i].Mode != filemode.Dir {
				return plumbing.ZeroHash, fmt.Errorf("%s is not a directory", dir)
			}
			t, err := objs.tree(entries[i].Hash)
			if err != nil {
				return plumbing.ZeroHash, fmt.Errorf("read tree %s: %w", dir, err)
			}
			subtree = t
		}
		h, err := writeSubtree(s, objs, subtree, sub, created)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("%s/%w", dir, err)
		}
		set(dir, filemode.Dir, h)
	}

	// Git orders tree entries by name, comparing a directory's name as if it ended with "/".
	sortKey := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return sortKey(entries[i]) < sortKey(entries[j]) })

	obj := s.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	*created = append(*created, h)
	return h, nil
}

func writeBlob(s storer.EncodedObjectStorer, content []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(content)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(content); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}
