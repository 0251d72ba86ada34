// Package probe proves that the application answers after a deployment: it checks URLs for a soak
// period (status, body, latency) and fails when a check keeps failing beyond a small tolerance. The
// deploy runs it after Argo CD reports Healthy; a failed probe is a failure of the deployed change.
package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/net/http/httpproxy"

	"wanderlust.dev/pipeline/ci/stages/telemetry"
)

// Options say what to check and for how long.
type Options struct {
	// URLs to check (http or https).
	URLs []string
	// Status is the expected status: "2xx" (default), a code ("200"), or a comma-separated list.
	Status string
	// Body, when set, is a regular expression the response body must match.
	Body string
	// MaxLatency, when set, fails a response slower than it.
	MaxLatency time.Duration
	// For is the soak duration (default 30s); Interval the time between rounds (default 2s).
	For, Interval time.Duration
	// Tolerance is how many consecutive failures of one URL are retried before the probe fails
	// (default 2: the third consecutive failure fails it).
	Tolerance int
	// Insecure skips TLS verification: a test-only escape. RootCAs, when set, verifies with these.
	Insecure bool
	RootCAs  *x509.CertPool
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// Log receives one line per failed check; nil discards them.
	Log func(string)
}

// Check is the record of one URL.
type Check struct {
	// URL is the checked URL without its query and fragment (they may carry tokens): what every
	// record, log and trace shows.
	URL        string        `json:"url"`
	Checks     int           `json:"checks"`
	Failures   int           `json:"failures"`
	MaxLatency time.Duration `json:"maxLatencyNs"`
	P50Latency time.Duration `json:"p50LatencyNs"`
	// LastError describes the last failed response: its status and latency (or why there was none).
	LastError string `json:"lastError,omitempty"`
	// Excerpt is the first bytes of the last failed response's body: for the run report only, never
	// for notes, webhooks or traces.
	Excerpt string `json:"excerpt,omitempty"`
	Passed  bool   `json:"passed"`
}

// Result is the record of a probe.
type Result struct {
	Checks []Check `json:"checks"`
	Passed bool    `json:"passed"`
}

// Error is a failed probe: the URL (as Check.URL shows it) and why (without the body's excerpt).
type Error struct {
	URL, Reason string
}

// Redact is u as records show it: scheme, host and path — no credentials, query or fragment.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(a URL that does not parse)"
	}
	p.User, p.RawQuery, p.ForceQuery, p.Fragment, p.RawFragment = nil, "", false, "", ""
	return p.String()
}

func (e *Error) Error() string { return fmt.Sprintf("probe: %s failed: %s", e.URL, e.Reason) }

// Validate checks the options without any request.
func (o Options) Validate() error {
	if len(o.URLs) == 0 {
		return errors.New("probe: no URL to check")
	}
	for _, u := range o.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			// Never echo a URL that failed to parse: it may carry a token in a malformed host.
			return fmt.Errorf("probe: verification URL %d of %d is not an http(s) URL", slices.Index(o.URLs, u)+1, len(o.URLs))
		}
		if p.User != nil {
			return fmt.Errorf("probe: %s: no credentials in a verification URL", Redact(u))
		}
	}
	if _, err := statusMatcher(o.Status); err != nil {
		return err
	}
	if _, err := regexp.Compile(o.Body); err != nil {
		return fmt.Errorf("probe: --verify-body: %w", err)
	}
	if o.For < 0 || o.Interval < 0 || o.MaxLatency < 0 {
		return errors.New("probe: durations must not be negative")
	}
	return nil
}

func statusMatcher(s string) (func(int) bool, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "2xx") {
		return func(c int) bool { return c >= 200 && c < 300 }, nil
	}
	ok := map[int]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if len(p) == 3 && strings.HasSuffix(strings.ToLower(p), "xx") && p[0] >= '1' && p[0] <= '5' {
			for c := int(p[0]-'0') * 100; c < int(p[0]-'0')*100+100; c++ {
				ok[c] = true
			}
			continue
		}
		c, err := strconv.Atoi(p)
		if err != nil || c < 100 || c > 599 {
			return nil, fmt.Errorf("probe: --verify-status %q: want 2xx, a status code or a list of them", s)
		}
		ok[c] = true
	}
	return func(c int) bool { return ok[c] }, nil
}

// Run checks every URL once per interval for the soak duration. It returns the record, and an *Error
// when a URL failed more than Tolerance times in a row.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.For == 0 {
		o.For = 30 * time.Second
	}
	if o.Interval == 0 {
		o.Interval = 2 * time.Second
	}
	if o.Tolerance == 0 {
		o.Tolerance = 2
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	ctx, span := telemetry.Start(ctx, "probe", attribute.Int("probe.urls", len(o.URLs)), attribute.String("probe.for", o.For.String()))
	defer func() {
		if res != nil {
			span.SetAttributes(attribute.Bool("probe.passed", res.Passed))
		}
		telemetry.End(span, err)
	}()
	okStatus, _ := statusMatcher(o.Status)
	body := regexp.MustCompile(o.Body)
	proxy := httpproxy.FromEnvironment().ProxyFunc() // HTTP_PROXY, HTTPS_PROXY, NO_PROXY, read now
	client := &http.Client{Timeout: o.Timeout, Transport: &http.Transport{
		Proxy:           func(r *http.Request) (*url.URL, error) { return proxy(r.URL) },
		TLSClientConfig: &tls.Config{InsecureSkipVerify: o.Insecure, RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}, // #nosec G402 -- test-only escape, documented
	}}
	defer client.CloseIdleConnections()

	res = &Result{Passed: true}
	checks := make([]Check, len(o.URLs))
	latencies := make([][]time.Duration, len(o.URLs))
	streak := make([]int, len(o.URLs))
	for i, u := range o.URLs {
		checks[i] = Check{URL: Redact(u), Passed: true}
	}
	deadline := time.Now().Add(o.For)
	var failure *Error
	for failure == nil {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i, u := range o.URLs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lat, why, excerpt := check(ctx, client, u, okStatus, body, o.MaxLatency)
				mu.Lock()
				defer mu.Unlock()
				c := &checks[i]
				c.Checks++
				latencies[i] = append(latencies[i], lat)
				c.MaxLatency = max(c.MaxLatency, lat)
				if why == "" {
					streak[i] = 0
					return
				}
				c.Failures++
				c.LastError, c.Excerpt = why, excerpt
				streak[i]++
				if o.Log != nil {
					o.Log(fmt.Sprintf("probe: %s: %s (%d in a row)", c.URL, why, streak[i]))
				}
				if streak[i] > o.Tolerance && failure == nil {
					c.Passed = false
					failure = &Error{URL: c.URL, Reason: fmt.Sprintf("%s (%d checks in a row)", why, streak[i])}
				}
			}()
		}
		wg.Wait()
		left := time.Until(deadline)
		if failure != nil || left <= 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("probe: %w", ctx.Err())
		case <-time.After(min(o.Interval, left)):
		}
	}
	// The soak ended while a URL was still failing (within the tolerance): that fails too.
	for i := range checks {
		if failure == nil && streak[i] > 0 {
			checks[i].Passed = false
			failure = &Error{URL: checks[i].URL, Reason: fmt.Sprintf("%s (still failing when the soak ended)", checks[i].LastError)}
		}
	}
	for i := range checks {
		checks[i].P50Latency = median(latencies[i])
	}
	res.Checks = checks
	if failure != nil {
		res.Passed = false
		return res, failure
	}
	return res, nil
}

// check makes one request; it returns the latency, why it failed ("" when it passed) and the first
// bytes of a failed response's body.
func check(ctx context.Context, c *http.Client, u string, okStatus func(int) bool, body *regexp.Regexp, maxLatency time.Duration) (time.Duration, string, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "cannot make the request", ""
	}
	req.Header.Set("User-Agent", "wanderlust-pipeline-probe")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		// The client's error quotes the whole URL: say what failed without it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return time.Since(start), "no response: " + err.Error(), ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	lat := time.Since(start)
	first := string(b)
	if len(first) > 120 {
		first = first[:120] + "…"
	}
	desc := fmt.Sprintf("status %d, %s", resp.StatusCode, lat.Round(time.Millisecond))
	switch {
	case !okStatus(resp.StatusCode):
		return lat, "unexpected " + desc, first
	case body.String() != "" && !body.Match(b):
		return lat, fmt.Sprintf("body does not match %q: %s", body.String(), desc), first
	case maxLatency > 0 && lat > maxLatency:
		return lat, fmt.Sprintf("slower than %s: %s", maxLatency, desc), first
	}
	return lat, "", ""
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// Flags are the verification flags of deploy, promote and sync (--verify-url …) as given.
type Flags struct {
	URLs                                    []string `json:",omitempty"`
	Status, Body, MaxLatency, For, Interval string   `json:",omitempty"`
	Insecure                                bool     `json:",omitempty"`
}

// Options checks the flags and turns them into options: nil without a URL.
func (f Flags) Options(log func(string)) (*Options, error) {
	if len(f.URLs) == 0 {
		return nil, nil
	}
	o := &Options{URLs: f.URLs, Status: f.Status, Body: f.Body, Insecure: f.Insecure, Log: log}
	for _, d := range []struct {
		flag, value string
		into        *time.Duration
	}{{"--verify-max-latency", f.MaxLatency, &o.MaxLatency}, {"--verify-for", f.For, &o.For}, {"--verify-interval", f.Interval, &o.Interval}} {
		if d.value == "" {
			continue
		}
		dur, err := time.ParseDuration(d.value)
		if err != nil || dur < 0 {
			return nil, fmt.Errorf("%s %q: want a duration such as 30s or 500ms", d.flag, d.value)
		}
		*d.into = dur
	}
	return o, o.Validate()
}
