// Package build tests and builds the two Wanderlust images with Dagger: for each component
// (frontend/, backend/ of the source) the tests run in a pinned Node container first, then the image
// is built from the component's Dockerfile or, without one, by a Node recipe. Both components build
// concurrently.
package build

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"wanderlust.dev/pipeline/ci/execerr"
	"wanderlust.dev/pipeline/ci/internal/dagger"
)

// Pinned images (exact versions, never :latest).
const (
	NodeImage  = "docker.io/library/node:20.18.1-alpine3.20"
	MongoImage = "docker.io/library/mongo:7.0.14"
	RedisImage = "docker.io/library/redis:7.2.5-alpine"
	NginxImage = "docker.io/nginxinc/nginx-unprivileged:1.27.3-alpine"
)

// Components of the application, as directories of the source.
const (
	Backend  = "backend"
	Frontend = "frontend"
)

// Options tune the recipes; the zero value is the default.
type Options struct {
	// NodeImage overrides the pinned Node image used for tests and Node-recipe builds.
	NodeImage string
	// MongoHost is the hostname the backend's tests reach MongoDB at (default "mongo-service", as
	// in the manifests); RedisHost likewise for Redis (default "redis-service").
	MongoHost, RedisHost string
	// SkipTests builds without running the tests.
	SkipTests bool
}

func (o Options) node() string {
	if o.NodeImage != "" {
		return o.NodeImage
	}
	return NodeImage
}

// npmCache is the npm download cache shared by every Node container.
func npmCache(c *dagger.Client) *dagger.CacheVolume { return c.CacheVolume("wanderlust-npm") }

// workspace is a Node container holding the component's sources with dependencies installed.
func workspace(c *dagger.Client, src *dagger.Directory, component string, o Options) *dagger.Container {
	return c.Container().From(o.node()).
		WithMountedCache("/root/.npm", npmCache(c)).
		WithDirectory("/app", src.Directory(component), dagger.ContainerWithDirectoryOpts{Exclude: []string{"node_modules", "dist", ".env"}}).
		WithWorkdir("/app").
		WithExec([]string{"npm", "ci", "--no-audit", "--no-fund"})
}

// Test returns the container that has run the component's tests (`npm test`). The backend's tests
// get MongoDB and Redis services under the hostnames the app expects.
func Test(c *dagger.Client, src *dagger.Directory, component string, o Options) *dagger.Container {
	ctr := workspace(c, src, component, o).WithEnvVariable("CI", "true")
	if component == Backend {
		mongoHost, redisHost := o.MongoHost, o.RedisHost
		if mongoHost == "" {
			mongoHost = "mongo-service"
		}
		if redisHost == "" {
			redisHost = "redis-service"
		}
		mongo := c.Container().From(MongoImage).WithExposedPort(27017).AsService()
		redis := c.Container().From(RedisImage).WithExposedPort(6379).AsService()
		ctr = ctr.
			WithServiceBinding(mongoHost, mongo).
			WithServiceBinding(redisHost, redis).
			WithEnvVariable("MONGODB_URI", "mongodb://"+mongoHost+":27017/wanderlust_test").
			WithEnvVariable("REDIS_URL", "redis://"+redisHost+":6379")
	}
	return ctr.WithExec([]string{"npm", "test"})
}

// Image builds the component's runtime image: its Dockerfile if it has one, else the Node recipe.
func Image(ctx context.Context, c *dagger.Client, src *dagger.Directory, component string, o Options) (*dagger.Container, error) {
	dir := src.Directory(component)
	hasDockerfile, err := dir.Exists(ctx, "Dockerfile")
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", component, err)
	}
	if hasDockerfile {
		return dir.DockerBuild(), nil
	}
	if component == Frontend {
		return frontendImage(c, src, o), nil
	}
	return backendImage(c, src, o), nil
}

// backendImage: production dependencies only, non-root, `npm start` on 8080.
func backendImage(c *dagger.Client, src *dagger.Directory, o Options) *dagger.Container {
	deps := c.Container().From(o.node()).
		WithMountedCache("/root/.npm", npmCache(c)).
		WithDirectory("/app", src.Directory(Backend), dagger.ContainerWithDirectoryOpts{Exclude: []string{"node_modules", ".env", "test", "tests", "__tests__"}}).
		WithWorkdir("/app").
		WithExec([]string{"npm", "ci", "--omit=dev", "--no-audit", "--no-fund"})
	return c.Container().From(o.node()).
		WithDirectory("/app", deps.Directory("/app"), dagger.ContainerWithDirectoryOpts{Owner: "node"}).
		WithWorkdir("/app").
		WithEnvVariable("NODE_ENV", "production").
		WithEnvVariable("PORT", "8080").
		WithExposedPort(8080).
		WithUser("node").
		WithEntrypoint([]string{"npm", "start"})
}

// frontendImage: the Vite build served by unprivileged nginx on 8080.
func frontendImage(c *dagger.Client, src *dagger.Directory, o Options) *dagger.Container {
	dist := workspace(c, src, Frontend, o).WithExec([]string{"npm", "run", "build"}).Directory("/app/dist")
	return c.Container().From(NginxImage).
		WithDirectory("/usr/share/nginx/html", dist).
		WithExposedPort(8080)
}

// Result holds the built images.
type Result struct {
	Backend, Frontend *dagger.Container
}

// One runs the component's tests (unless o.SkipTests), then builds its image. A failing test fails
// with the test output.
func One(ctx context.Context, c *dagger.Client, src *dagger.Directory, component string, o Options) (*dagger.Container, error) {
	if !o.SkipTests {
		if _, err := Test(c, src, component, o).Sync(ctx); err != nil {
			return nil, execerr.Wrap(fmt.Sprintf("build %s: tests failed", component), err)
		}
	}
	img, err := Image(ctx, c, src, component, o)
	if err != nil {
		return nil, err
	}
	if img, err = img.Sync(ctx); err != nil {
		return nil, execerr.Wrap(fmt.Sprintf("build %s: image", component), err)
	}
	return img, nil
}

// Both runs One for the backend and the frontend concurrently.
func Both(ctx context.Context, c *dagger.Client, src *dagger.Directory, o Options) (*Result, error) {
	res := &Result{}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		res.Backend, err = One(ctx, c, src, Backend, o)
		return err
	})
	g.Go(func() (err error) {
		res.Frontend, err = One(ctx, c, src, Frontend, o)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return res, nil
}
