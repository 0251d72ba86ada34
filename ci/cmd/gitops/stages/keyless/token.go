package keyless

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/stages/evidence"
)

// Audience is the audience Fulcio accepts in identity tokens.
const Audience = "sigstore"

// TokenSource is where the OIDC identity token comes from: given as is, or requested from the CI
// (GitHub Actions: ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN, in jobs with
// `id-token: write`) at the moment of signing — such tokens live minutes, builds can take longer.
type TokenSource struct {
	Token                    string
	RequestURL, RequestToken string
	Client                   *http.Client
}

// Check says whether a token can be had, without asking for it.
func (s TokenSource) Check() error {
	if err := evidence.CheckTokenSource(s.Token != "", s.RequestURL != "", s.RequestToken != ""); err != nil || s.Token != "" {
		return err
	}
	if u, err := url.Parse(s.RequestURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("keyless: --oidc-request-url is not an http(s) URL (not shown)")
	}
	return nil
}

// Get returns the token, requesting one for the audience "sigstore" when not given. Errors never
// carry the token, the request URL or its bearer token.
func (s TokenSource) Get(ctx context.Context) (string, error) {
	if err := s.Check(); err != nil {
		return "", err
	}
	if s.Token != "" {
		return s.Token, nil
	}
	u, _ := url.Parse(s.RequestURL)
	q := u.Query()
	q.Set("audience", Audience)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", errors.New("keyless: identity token request: bad URL (not shown)")
	}
	req.Header.Set("Authorization", "Bearer "+s.RequestToken)
	req.Header.Set("Accept", "application/json")
	c := s.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("keyless: identity token request to %s failed", u.Host)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("keyless: identity token request to %s: %s (does the job have `permissions: id-token: write`?)", u.Host, resp.Status)
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &v); err != nil || strings.Count(v.Value, ".") != 2 {
		return "", fmt.Errorf("keyless: identity token request to %s: the answer holds no token", u.Host)
	}
	return v.Value, nil
}
