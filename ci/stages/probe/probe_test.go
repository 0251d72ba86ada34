package probe

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestHealthyAppPassesTheSoak(t *testing.T) {
	var n atomic.Int32
	s := server(t, func(w http.ResponseWriter, r *http.Request) { n.Add(1); w.Write([]byte(`{"status":"ok"}`)) })
	res, err := Run(context.Background(), Options{URLs: []string{s.URL + "/health"}, Body: `"status":"ok"`, For: 300 * time.Millisecond, Interval: 50 * time.Millisecond})
	if err != nil || !res.Passed || res.Checks[0].Checks < 4 || int(n.Load()) != res.Checks[0].Checks {
		t.Fatalf("%+v %v (server saw %d)", res, err, n.Load())
	}
}

func TestErrorsDuringTheSoakFailWithTheResponse(t *testing.T) {
	var n atomic.Int32
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) > 2 { // healthy at first, then 500 for good
			http.Error(w, "database unreachable: connection refused", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	})
	res, err := Run(context.Background(), Options{URLs: []string{s.URL}, For: 2 * time.Second, Interval: 20 * time.Millisecond})
	var pe *Error
	if !errors.As(err, &pe) || res.Passed || !strings.Contains(err.Error(), "status 500") || !strings.Contains(res.Checks[0].Excerpt, "database unreachable") ||
		!strings.Contains(err.Error(), "3 checks in a row") {
		t.Fatalf("%+v %v", res, err)
	}
	// The body's excerpt is for the report only: not in the error (notes, webhooks, traces use it).
	if strings.Contains(err.Error(), "database unreachable") || strings.Contains(res.Checks[0].LastError, "database") {
		t.Errorf("the response excerpt leaked into %v / %q", err, res.Checks[0].LastError)
	}
}

func TestOneBlipWithinTheToleranceIsForgiven(t *testing.T) {
	var n atomic.Int32
	s := server(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 2 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write([]byte("ok"))
	})
	res, err := Run(context.Background(), Options{URLs: []string{s.URL}, For: 300 * time.Millisecond, Interval: 30 * time.Millisecond})
	if err != nil || res.Checks[0].Failures != 1 || !res.Passed {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestStillFailingWhenTheSoakEnds(t *testing.T) {
	s := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	_, err := Run(context.Background(), Options{URLs: []string{s.URL}, For: 10 * time.Millisecond, Interval: 5 * time.Millisecond, Tolerance: 10})
	if err == nil || !strings.Contains(err.Error(), "still failing") {
		t.Fatalf("err = %v", err)
	}
}

func TestSlowResponsesFail(t *testing.T) {
	s := server(t, func(w http.ResponseWriter, r *http.Request) { time.Sleep(60 * time.Millisecond); w.Write([]byte("ok")) })
	_, err := Run(context.Background(), Options{URLs: []string{s.URL}, MaxLatency: 20 * time.Millisecond, For: 200 * time.Millisecond, Interval: 10 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "slower than 20ms") {
		t.Fatalf("err = %v", err)
	}
}

func TestUntrustedCertificateFailsUnlessInsecure(t *testing.T) {
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer s.Close()
	o := Options{URLs: []string{s.URL}, For: 50 * time.Millisecond, Interval: 10 * time.Millisecond}
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	o.Insecure = true
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatalf("--verify-insecure: %v", err)
	}
}

func TestBadOptions(t *testing.T) {
	for _, o := range []Options{{}, {URLs: []string{"ftp://x"}}, {URLs: []string{"https://u:p@x/"}}, {URLs: []string{"http://x"}, Status: "99"},
		{URLs: []string{"http://x"}, Body: "("}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v accepted", o)
		} else if strings.Contains(err.Error(), "u:p@") {
			t.Errorf("credentials in the error: %v", err)
		}
	}
	if m, _ := statusMatcher("200,3xx"); !m(200) || !m(302) || m(201) {
		t.Error("status list")
	}
}

// Behind a corporate proxy the checks go through HTTP_PROXY, and NO_PROXY is honoured.
func TestChecksGoThroughTheProxyFromTheEnvironment(t *testing.T) {
	var proxied atomic.Int32
	proxy := server(t, func(w http.ResponseWriter, r *http.Request) {
		// A forward proxy sees the absolute URL of a host only it can reach.
		if r.URL.Host != "app.wanderlust.test" {
			http.Error(w, "unknown host", http.StatusBadGateway)
			return
		}
		proxied.Add(1)
		w.Write([]byte("ok"))
	})
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")
	o := Options{URLs: []string{"http://app.wanderlust.test/health"}, For: 100 * time.Millisecond, Interval: 50 * time.Millisecond, Timeout: 2 * time.Second}
	if res, err := Run(context.Background(), o); err != nil || proxied.Load() == 0 {
		t.Fatalf("through the proxy: %+v %v (proxied %d)", res, err, proxied.Load())
	}
	t.Setenv("NO_PROXY", "app.wanderlust.test")
	before := proxied.Load()
	if _, err := Run(context.Background(), o); err == nil || proxied.Load() != before {
		t.Errorf("NO_PROXY ignored: err %v, proxied %d more", err, proxied.Load()-before)
	}
}

// URLs may carry tokens in their query: no record, error or log line shows the query, and a URL
// that does not parse is never echoed.
func TestRecordsCarryNoQueryOrCredentials(t *testing.T) {
	const token = "probe-token-9f8e7d"
	s := server(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusServiceUnavailable) })
	var logs []string
	res, err := Run(context.Background(), Options{URLs: []string{s.URL + "/health?token=" + token + "#" + token}, For: time.Second, Interval: 10 * time.Millisecond,
		Log: func(l string) { logs = append(logs, l) }})
	if err == nil || res.Checks[0].URL != s.URL+"/health" {
		t.Fatalf("%+v %v", res, err)
	}
	for _, text := range append(logs, err.Error(), res.Checks[0].URL, res.Checks[0].LastError) {
		if strings.Contains(text, token) {
			t.Errorf("the query's token leaked: %q", text)
		}
	}
	// A dead URL: the client's own error quotes the URL; ours does not.
	res, err = Run(context.Background(), Options{URLs: []string{"http://127.0.0.1:1/x?token=" + token}, For: time.Second, Interval: 10 * time.Millisecond, Timeout: time.Second})
	if err == nil || strings.Contains(err.Error(), token) || strings.Contains(res.Checks[0].LastError, token) {
		t.Errorf("dead URL: %v / %q", err, res.Checks[0].LastError)
	}
	for _, bad := range []string{"http://user:" + token + "@app/x", "http://app" + token + "%zz/x", "ftp://" + token + "/x"} {
		if err := (Options{URLs: []string{bad}}).Validate(); err == nil || strings.Contains(err.Error(), token) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
