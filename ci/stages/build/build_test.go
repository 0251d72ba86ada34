package build

// No Dagger engine runs here: these tests point the SDK at a stand-in session (daggerfake) that
// records the GraphQL pipelines the recipes build and answers them.

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/testsupport/daggerfake"
)

var fromAddress = regexp.MustCompile(`from\(address:"([^"]+)"\)`)

// assertPinned checks every image a recorded pipeline starts from has an explicit version tag.
func assertPinned(t *testing.T, queries string) {
	t.Helper()
	ms := fromAddress.FindAllStringSubmatch(queries, -1)
	if len(ms) == 0 {
		t.Fatal("no from(address:…) recorded")
	}
	for _, m := range ms {
		ref := m[1]
		last := ref[strings.LastIndex(ref, "/")+1:]
		if !strings.Contains(last, ":") || strings.HasSuffix(ref, ":latest") {
			t.Errorf("image %q is not pinned to a version", ref)
		}
	}
}

// syncBarrier answers sync queries only once two are in flight together (or after a timeout),
// recording the highest number seen at once.
type syncBarrier struct {
	mu       sync.Mutex
	inFlight int
	maxSeen  int
	both     chan struct{}
	once     sync.Once
}

func (b *syncBarrier) enter() {
	b.mu.Lock()
	b.inFlight++
	b.maxSeen = max(b.maxSeen, b.inFlight)
	if b.inFlight >= 2 {
		b.once.Do(func() { close(b.both) })
	}
	b.mu.Unlock()
	select {
	case <-b.both:
	case <-time.After(3 * time.Second):
	}
	b.mu.Lock()
	b.inFlight--
	b.mu.Unlock()
}

func TestBothBuildsConcurrentlyTestsFirst(t *testing.T) {
	barrier := &syncBarrier{both: make(chan struct{})}
	var session *daggerfake.Server
	session = daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		switch field {
		case "exists": // the backend has a Dockerfile, the frontend does not
			return strings.Contains(session.Expand(q), `directory(path:"backend")`), nil
		case "sync":
			barrier.enter()
		}
		return daggerfake.Default(field, q)
	}))
	c := dagger.Connect()
	res, err := Both(context.Background(), c, c.Directory(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Backend == nil || res.Frontend == nil {
		t.Fatal("missing image")
	}
	if barrier.maxSeen < 2 {
		t.Error("the two builds never were in flight together")
	}
	all := session.Expand(session.All())
	assertPinned(t, all)
	for _, c := range [][]string{
		{"cacheVolume", `key:"wanderlust-npm"`}, {"withMountedCache", `path:"/root/.npm"`},
		{"withServiceBinding", `alias:"mongo-service"`}, {"withServiceBinding", `alias:"redis-service"`},
		{"withEnvVariable", `name:"MONGODB_URI"`, `value:"mongodb://mongo-service:27017/wanderlust_test"`},
		{"from", `address:"` + MongoImage + `"`}, {"withExec", `args:["npm","test"]`}, {"withExec", `args:["npm","ci","--no-audit","--no-fund"]`},
		{"dockerBuild"}, {"from", `address:"` + NginxImage + `"`}, {"withExec", `args:["npm","run","build"]`},
	} {
		if !daggerfake.HasCall(all, c[0], c[1:]...) {
			t.Errorf("no %s(%s) in the recorded pipelines", c[0], strings.Join(c[1:], ", "))
		}
	}
	// Per component, the test pipeline is synced before the image's.
	for _, comp := range []string{"backend", "frontend"} {
		testAt, imageAt := -1, -1
		for i, q := range session.Queries() {
			q = session.Expand(q)
			if !strings.HasSuffix(strings.TrimRight(q, "}"), "sync") || !strings.Contains(q, `directory(path:"`+comp+`")`) {
				continue
			}
			if strings.Contains(q, `"npm","test"`) {
				testAt = i
			} else if imageAt < 0 {
				imageAt = i
			}
		}
		if testAt < 0 || imageAt < 0 || testAt > imageAt {
			t.Errorf("%s: test sync at %d, image sync at %d", comp, testAt, imageAt)
		}
	}
}

func TestFailingTestsFailTheBuildWithTheirOutput(t *testing.T) {
	var session *daggerfake.Server
	session = daggerfake.Start(t, daggerfake.Auto(func(field, q string) (any, error) {
		if q = session.Expand(q); field == "sync" && strings.Contains(q, `"npm","test"`) && strings.Contains(q, `directory(path:"backend")`) {
			return nil, errors.New("process \"npm test\" did not complete successfully: exit code: 1\n  ● auth › rejects a bad token")
		}
		return daggerfake.Default(field, q)
	}))
	c := dagger.Connect()
	_, err := Both(context.Background(), c, c.Directory(), Options{})
	if err == nil || !strings.Contains(err.Error(), "build backend: tests failed") || !strings.Contains(err.Error(), "rejects a bad token") {
		t.Fatalf("err = %v", err)
	}
	// The failing component's image is never built.
	for _, q := range session.Queries() {
		if q = session.Expand(q); strings.Contains(q, `directory(path:"backend")`) && strings.Contains(q, "dockerBuild") {
			t.Errorf("backend image built after failing tests: %s", q)
		}
	}
}

func TestSkipTests(t *testing.T) {
	session := daggerfake.Start(t, daggerfake.Auto(daggerfake.Default))
	c := dagger.Connect()
	if _, err := One(context.Background(), c, c.Directory(), Backend, Options{SkipTests: true}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(session.All(), `"npm","test"`) {
		t.Error("tests ran with SkipTests")
	}
}
