package deploy

import (
	"context"

	"wanderlust.dev/pipeline/ci/stages/git"
	"wanderlust.dev/pipeline/ci/stages/intent"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/record"
)

// maxDeployLookback bounds the walk back through an overlay's history in search of the commits that
// set its images.
const maxDeployLookback = 200

// source is what an environment runs at a revision and where it came from.
type source struct {
	// Images are the overlay's images entries at the revision.
	Images []manifest.Image
	// SetBy names, by image, the GitOps commit that set its current value; Commits that commit's
	// Source-Commit trailer (the application commit the image was deployed as), where it has one.
	SetBy, Commits map[string]string
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
	commits, found := map[string]string{}, map[string]string{}
	sha := rev
	for n := 0; n < maxDeployLookback && len(found) < len(want) && sha != ""; n++ {
		c, err := rd.Commit(ctx, sha)
		if err != nil {
			return nil, err
		}
		if len(c.Parents) == 1 {
			in, err := intent.Of(ctx, rd, sha, dir)
			if err != nil {
				break // e.g. the commit that created the overlay: nothing older set what runs
			}
			source := record.ParseTrailers(c.Message)[record.SourceCommit]
			for _, set := range in.Want {
				if w, ok := want[set.Name]; ok && found[set.Name] == "" && set.Ref() == w.Ref() {
					found[set.Name] = sha
					if source != "" {
						commits[set.Name] = source
					}
				}
			}
		}
		sha = ""
		if len(c.Parents) > 0 {
			sha = c.Parents[0]
		}
	}
	return &source{Images: imgs, SetBy: found, Commits: commits}, nil
}
