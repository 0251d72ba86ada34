package registry

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const (
	user     = "ci"
	password = "reg-pass-planted-42"
)

// registryWithAuth runs go-containerregistry's in-process OCI registry behind HTTP basic auth, as a
// real registry would be, on 127.0.0.1.
func registryWithAuth(t *testing.T) string {
	t.Helper()
	reg := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		} else if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// push puts a random image under ref and returns its digest.
func push(t *testing.T, ref string) string {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: user, Password: password})); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestResolvePushedImages(t *testing.T) {
	host := registryWithAuth(t)
	backend := host + "/wanderlust/wanderlust-backend:1.2.3"
	frontend := host + "/wanderlust/wanderlust-frontend:1.2.3"
	wantB, wantF := push(t, backend), push(t, frontend)
	imgs, err := Resolve(context.Background(), []string{backend, frontend}, Auth{Username: user, Password: password, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 || imgs[0].Digest != wantB || imgs[1].Digest != wantF {
		t.Fatalf("resolved %+v, want %s and %s", imgs, wantB, wantF)
	}
	if imgs[0].Pinned() != backend+"@"+wantB || imgs[0].Repository() != host+"/wanderlust/wanderlust-backend" || imgs[0].Tag() != "1.2.3" {
		t.Errorf("image = %+v pinned %s repo %s tag %s", imgs[0], imgs[0].Pinned(), imgs[0].Repository(), imgs[0].Tag())
	}
}

func TestMissingTagsAreNamed(t *testing.T) {
	host := registryWithAuth(t)
	push(t, host+"/wanderlust/wanderlust-backend:1.2.3")
	_, err := Resolve(context.Background(), []string{
		host + "/wanderlust/wanderlust-backend:1.2.3",
		host + "/wanderlust/wanderlust-backend:9.9.9",
		host + "/wanderlust/wanderlust-frontend:1.2.3",
	}, Auth{Username: user, Password: password, Host: host})
	if err == nil || !strings.Contains(err.Error(), "not pushed") || !strings.Contains(err.Error(), "wanderlust-backend:9.9.9") ||
		!strings.Contains(err.Error(), "wanderlust-frontend:1.2.3") || strings.Contains(err.Error(), "backend:1.2.3,") {
		t.Fatalf("err = %v", err)
	}
}

func TestBadCredentials(t *testing.T) {
	host := registryWithAuth(t)
	ref := host + "/wanderlust/wanderlust-backend:1.2.3"
	push(t, ref)
	_, err := Resolve(context.Background(), []string{ref}, Auth{Username: user, Password: "wrong-password-x", Host: host})
	if err == nil || !strings.Contains(err.Error(), "access denied") || strings.Contains(err.Error(), "wrong-password-x") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Resolve(context.Background(), []string{"not a ref!"}, Auth{}); err == nil {
		t.Error("a bad reference was accepted")
	}
}

// The login goes to its own registry only: a reference to another registry (an overlay's entry
// anyone with write access to the GitOps repository could add) is read anonymously, and when that
// registry wants a login the error says why none is sent.
func TestCredentialsGoOnlyToTheirRegistry(t *testing.T) {
	own := registryWithAuth(t)
	var mu sync.Mutex
	var seen []string
	reg := ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)))
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if a := r.Header.Get("Authorization"); a != "" {
			seen = append(seen, r.URL.Path+": "+a)
		}
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/v2/private/") {
			w.Header().Set("WWW-Authenticate", `Basic realm="collector"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(other.Close)
	otherHost := strings.TrimPrefix(other.URL, "http://")
	mine := own + "/wanderlust/wanderlust-backend:1.2.3"
	push(t, mine)
	theirs := otherHost + "/wanderlust/wanderlust-frontend:1.2.3"
	img, _ := random.Image(256, 1)
	r, _ := name.ParseReference(theirs)
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	auth := Auth{Username: user, Password: password, Host: own}
	if _, err := Resolve(context.Background(), []string{mine, theirs}, auth); err != nil {
		t.Fatal(err)
	}
	_, err := Resolve(context.Background(), []string{otherHost + "/private/x:1"}, auth)
	if err == nil || !strings.Contains(err.Error(), "for "+own+" only") || strings.Contains(err.Error(), password) {
		t.Errorf("err = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) > 0 {
		t.Errorf("the other registry received credentials: %v", seen)
	}
	if !auth.Owns(own) || auth.Owns(otherHost) || (Auth{Username: user}).Owns(own) || !(Auth{Host: "docker.io"}).Owns("index.docker.io") {
		t.Error("Owns")
	}
}
