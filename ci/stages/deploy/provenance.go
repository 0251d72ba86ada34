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

// sourceCommits finds, for each image entry of dir at rev, the commit that set its current value
// (walking first parents from rev) and that commit's Source-Commit trailer: the application commit
// the image was deployed as. Images whose setting commit names none are left out; found says, by
// image, which GitOps commit set it. The walk stops at the overlay's first commit.
func sourceCommits(ctx context.Context, g git.Options, rev, dir string, imgs []manifest.Image) (commits, found map[string]string, err error) {
	rd, err := git.Open(ctx, g)
	if err != nil {
		return nil, nil, err
	}
	want := manifest.ByName(imgs)
	commits, found = map[string]string{}, map[string]string{}
	sha := rev
	for n := 0; n < maxDeployLookback && len(found) < len(want) && sha != ""; n++ {
		c, err := rd.Commit(ctx, sha)
		if err != nil {
			return nil, nil, err
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
	return commits, found, nil
}
