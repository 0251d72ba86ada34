package build

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"wanderlust.dev/pipeline/ci/internal/dagger"
)

// BaseImages are the images a component's build starts from, for its provenance: its Dockerfile's
// FROM images (stage names, scratch and duplicates left out), or those of the built-in recipe.
func BaseImages(ctx context.Context, src *dagger.Directory, component string, o Options) ([]string, error) {
	dir := src.Directory(component)
	has, err := dir.Exists(ctx, "Dockerfile")
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", component, err)
	}
	if !has {
		if component == Frontend {
			return []string{o.node(), NginxImage}, nil
		}
		return []string{o.node()}, nil
	}
	df, err := dir.File("Dockerfile").Contents(ctx)
	if err != nil {
		return nil, fmt.Errorf("build %s: Dockerfile: %w", component, err)
	}
	return FromImages(df), nil
}

// FromImages lists the images of a Dockerfile's FROM lines, in order, without stage references,
// scratch or duplicates. Flags (--platform=…) are skipped; build arguments are kept as written.
func FromImages(dockerfile string) []string {
	stages := map[string]bool{}
	seen := map[string]bool{}
	var out []string
	sc := bufio.NewScanner(strings.NewReader(dockerfile))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.EqualFold(f[0], "FROM") {
			continue
		}
		args := f[1:]
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			args = args[1:]
		}
		if len(args) == 0 {
			continue
		}
		img := args[0]
		if !stages[strings.ToLower(img)] && !strings.EqualFold(img, "scratch") && !seen[img] {
			seen[img] = true
			out = append(out, img)
		}
		if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
			stages[strings.ToLower(args[2])] = true
		}
	}
	return out
}
