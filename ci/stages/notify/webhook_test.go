package notify

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"wanderlust.dev/pipeline/ci/stages/report"
)

func TestWebhookPostsASlackMessageAndKeepsTheURLSecret(t *testing.T) {
	const secretPath = "/services/T000/B000/planted-webhook-secret-9z8y"
	var got map[string]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != secretPath || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "no such hook: "+r.URL.Path, http.StatusNotFound)
			return
		}
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	r := report.New("Wanderlust deploy", "prod")
	r.Begin("bump")(map[string]string{"sha": "abc"}, nil)
	r.Finish(nil)
	if err := Webhook(context.Background(), srv.URL+secretPath, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got["text"], "deployed to prod - 'SUCCESS'") || !strings.Contains(got["text"], "• bump: succeeded") {
		t.Errorf("message %q", got["text"])
	}
	// A wrong URL: the server echoes the path; the error must not carry it.
	err := Webhook(context.Background(), srv.URL+"/services/wrong-planted-secret-1q2w", r)
	if err == nil || strings.Contains(err.Error(), "planted-secret") || !strings.Contains(err.Error(), "404") {
		t.Errorf("err = %v", err)
	}
	// Down: the error names the host, not the URL.
	err = Webhook(context.Background(), "http://127.0.0.1:1/services/planted-secret-down", r)
	if err == nil || strings.Contains(err.Error(), "planted-secret") {
		t.Errorf("err = %v", err)
	}
}
