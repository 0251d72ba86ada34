package deploy

import (
	"context"
	"time"

	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/intent"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/record"
)

// lookbackTime bounds the walk back through an overlay's history in search of the commits that set
// its images: by time, not by a number of commits (a busy monorepo branch has thousands a week).
const lookbackTime = time.Minute

// source is what an environment runs at a revision and where it came from.
type source struct {
	// Images are the overlay's images entries at the revision.
	Images []manifest.Image
	// SetBy names, by image, the GitOps commit that set its current value; Commits that commit's
	// Source-Commit trailer (the application commit the image was deployed as) and Times its
	// Source-Commit-Time, where it has them.
	SetBy, Commits, Times map[string]string
}

// readSource reads the images entries of dir at rev and, walking first parents from rev, the
// commit that set each one's current value and its Source-Commit, over one git reader. The walk
// stops at the overlay's first commit.
func readSource(ctx context.Context, g git.Options, rev, dir string) (*source, error) {
	rd, err := git.Open(ctx, g)
	if err != nil {
		return nil, err
	}
	t, err := rd.Tree(ctx, rev)
	if err != nil {
		return nil, err
	}
	imgs, err := manifest.Images(t, dir)
	if err != nil {
		return nil, err
	}
	want := manifest.ByName(imgs)
	commits, found, times := map[string]string{}, map[string]string{}, map[string]string{}
	walk, cancel := context.WithTimeout(ctx, lookbackTime)
	defer cancel()
	sha := rev
	for len(found) < len(want) && sha != "" {
		c, err := rd.Commit(walk, sha)
		if walk.Err() != nil && ctx.Err() == nil {
			break // out of time: what was not found stays unestablished (and the gate says so)
		}
		if err != nil {
			return nil, err
		}
		if len(c.Parents) == 1 {
			in, err := intent.Of(walk, rd, sha, dir)
			if err != nil {
				break // e.g. the commit that created the overlay: nothing older set what runs
			}
			trailers := record.ParseTrailers(c.Message)
			for _, set := range in.Want {
				if w, ok := want[set.Name]; ok && found[set.Name] == "" && set.Ref() == w.Ref() {
					found[set.Name] = sha
					if s := trailers[record.SourceCommit]; s != "" {
						commits[set.Name] = s
					}
					if t := trailers[record.SourceCommitTime]; t != "" {
						times[set.Name] = t
					}
				}
			}
		}
		sha = ""
		if len(c.Parents) > 0 {
			sha = c.Parents[0]
		}
	}
	return &source{Images: imgs, SetBy: found, Commits: commits, Times: times}, nil
}
