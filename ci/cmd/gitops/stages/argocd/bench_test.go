package argocd

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"
)

// observer watches an Application through the Kubernetes API (not through Argo CD) and records when
// its status first shows a revision Synced and Healthy as evaluated after the operation finished.
type observer struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func observe(ctx context.Context, e *env, app string) (*observer, error) {
	o := &observer{seen: map[string]time.Time{}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.h.KubeAPI+"/apis/argoproj.io/v1alpha1/namespaces/argocd/applications?watch=1&fieldSelector=metadata.name%3D"+app, nil)
	req.Header.Set("Authorization", "Bearer "+e.h.AdminToken)
	cli := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := cli.Do(req)
	if err != nil {
		return nil, err
	}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			now := time.Now()
			var ev struct {
				Object struct {
					Status struct {
						Sync struct {
							Status, Revision string
						}
						Health struct {
							Status string
						}
						ReconciledAt   time.Time
						OperationState *struct {
							Phase      string
							FinishedAt *time.Time
						}
					}
				}
			}
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			st := ev.Object.Status
			op := st.OperationState
			if st.Sync.Status == "Synced" && st.Health.Status == "Healthy" && op != nil && op.Phase == "Succeeded" &&
				op.FinishedAt != nil && st.ReconciledAt.After(*op.FinishedAt) {
				o.mu.Lock()
				if _, ok := o.seen[st.Sync.Revision]; !ok {
					o.seen[st.Sync.Revision] = now
				}
				o.mu.Unlock()
			}
		}
	}()
	return o, nil
}

func (o *observer) at(rev string) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	t, ok := o.seen[rev]
	return t, ok
}

// BenchmarkArgoCD measures P2 (from the moment the API shows our revision Synced and Healthy to the
// moment Sync returns) and P4 (bump + push → Healthy), on the loopback Argo CD.
func BenchmarkArgoCD(b *testing.B) {
	e := setup(b)
	app := e.repo(b, "bench", true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	obs, err := observe(ctx, e, app)
	if err != nil {
		b.Fatal(err)
	}
	const runs = 7
	var detect, total []time.Duration
	for i := 0; i < runs; i++ {
		start := time.Now()
		sha := e.push(b, app, fmt.Sprintf("wanderlust-backend=9.%d.0", i))
		o := e.opts(app, sha, b)
		start2 := time.Now()
		o.Log = func(s string) {
			if testing.Verbose() {
				fmt.Printf("%6dms %s\n", time.Since(start2).Milliseconds(), s)
			}
		}
		if _, err := Sync(ctx, o); err != nil {
			b.Fatal(err)
		}
		returned := time.Now()
		total = append(total, returned.Sub(start))
		time.Sleep(200 * time.Millisecond) // let the observer's stream deliver
		seen, ok := obs.at(sha)
		if !ok {
			b.Fatalf("the observer never saw %s Synced and Healthy", sha)
		}
		detect = append(detect, returned.Sub(seen))
	}
	pct := func(ds []time.Duration, p float64) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[min(len(s)-1, int(p*float64(len(s))))]
	}
	fmt.Printf("BENCH P2 detect_ms_p50=%d detect_ms_p95=%d runs=%d\n", pct(detect, 0.5).Milliseconds(), pct(detect, 0.95).Milliseconds(), runs)
	fmt.Printf("BENCH P4 push_to_healthy_s=%.2f p95_s=%.2f runs=%d\n", pct(total, 0.5).Seconds(), pct(total, 0.95).Seconds(), runs)
	b.ReportMetric(float64(pct(detect, 0.5).Milliseconds()), "detect_ms_p50")
	b.ReportMetric(pct(total, 0.5).Seconds(), "push_to_healthy_s")
}
