package intent

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/manifest"
)

// Undo rolls the deployment back field by field: every entry it set goes back to its value before
// the deployment's commit, in a new commit pushed with git.Commit's compare-and-swap (never a force).
// Other changes made since — another image, another environment, comments — stay. It fails with a
// git.ConflictError when one of *our* entries changed again since (naming the commit that changed it),
// and pushes nothing. The returned intent is the rollback's own: what to wait for.
func Undo(ctx context.Context, opts git.Options, in *Intent, reason string) (*git.Result, *Intent, error) {
	if in.SHA == "" || len(in.Want) == 0 {
		return nil, nil, fmt.Errorf("intent: nothing to undo (no commit, or it set no image entry in %s)", in.Dir)
	}
	var lines []string
	back := &Intent{Dir: in.Dir}
	for i, w := range in.Want {
		b := in.Before[i]
		if b.Name == "" {
			lines = append(lines, fmt.Sprintf("- %s: %s → (entry removed: our commit added it)", manifest.LastElem(w.Name), w.Ref()))
			back.Absent = append(back.Absent, w.Name)
			continue
		}
		lines = append(lines, fmt.Sprintf("- %s: %s → %s", manifest.LastElem(w.Name), w.Ref(), b.Ref()))
		back.Want, back.Before = append(back.Want, b), append(back.Before, w)
	}
	msg := fmt.Sprintf("Roll back %s in %s\n\nRestores the image entries that commit %s set:\n%s\n", git.Short(in.SHA), in.Dir, in.SHA, strings.Join(lines, "\n"))
	if reason = strings.TrimSpace(reason); reason != "" {
		msg += "\nReason: " + reason + "\n"
	}
	msg += "\nRolls-Back: " + in.SHA + "\n"

	res, err := git.Commit(ctx, opts, func(head fs.FS) (*git.Patch, error) {
		current, err := manifest.Images(head, in.Dir)
		if err != nil {
			return nil, err
		}
		byName := manifest.ByName(current)
		p := &git.Patch{Message: msg}
		var todo []manifest.Update
		var remove []string
		for i, w := range in.Want {
			cur, b := byName[w.Name], in.Before[i]
			key := in.Dir + "#images[" + w.Name + "]"
			p.Values = append(p.Values, git.Value{Key: key, From: cur.Ref(), To: b.Ref()})
			switch cur {
			case b: // already restored (or, for an entry we added, already gone)
			case w:
				if b.Name == "" {
					remove = append(remove, w.Name)
				} else {
					todo = append(todo, b.Update())
				}
			default:
				ce := &git.ConflictError{Key: key, Base: w.Ref(), Theirs: cur.Ref(), Ours: b.Ref(),
					Hint: "our entry was changed again since the deployment, so rolling it back would undo that change too; nothing was pushed: decide by hand"}
				blame(ctx, opts, in, ce)
				return nil, ce
			}
		}
		files := map[string][]byte{}
		if len(todo) > 0 {
			r, err := manifest.Apply(head, manifest.Options{Path: in.Dir, Updates: todo})
			if err != nil {
				return nil, err
			}
			files = r.Files
		}
		if len(remove) > 0 {
			kpath, err := manifest.KustomizationFile(head, in.Dir)
			if err != nil {
				return nil, err
			}
			data, ok := files[kpath]
			if !ok {
				if data, err = fs.ReadFile(head, kpath); err != nil {
					return nil, err
				}
			}
			if files[kpath], err = manifest.RemoveImageEntries(kpath, data, remove); err != nil {
				return nil, err
			}
		}
		if len(files) > 0 {
			p.Files = files
		}
		return p, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("roll back %s: %w", git.Short(in.SHA), err)
	}
	back.SHA, back.Parent = res.SHA, res.Base
	if !res.Changed {
		back.SHA = "" // already restored: nothing pushed, the values are in git
	}
	return res, back, nil
}

// blame names the first commit after ours that changed the conflicting entry.
func blame(ctx context.Context, opts git.Options, in *Intent, ce *git.ConflictError) {
	rd, err := git.Open(ctx, opts)
	if err != nil {
		return
	}
	between, _, err := rd.Between(ctx, rd.Head, in.SHA)
	if err != nil {
		return
	}
	for i := len(between) - 1; i >= 0; i-- {
		m, err := in.missingAt(ctx, rd, between[i].SHA)
		if err != nil {
			return
		}
		for _, x := range m {
			if in.Dir+"#images["+x.Image+"]" == ce.Key {
				ce.Commit, ce.Author, ce.Subject = between[i].SHA, between[i].Author, between[i].Subject
				return
			}
		}
	}
}
