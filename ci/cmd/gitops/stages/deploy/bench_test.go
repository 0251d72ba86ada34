package deploy

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/report"
)

// BenchmarkCanary measures P11 on the harness: a canary of both images through the component's two
// pauses, each passed by checks of pauseFor (the module's default --verify-for, 30 s). The floor is
// what the rollout itself takes at its pauses: the checks and the resume actions, as the steps
// recorded them; push_to_promoted runs from the bump's push to the end of deploy's sync stage, when
// it has seen both Rollouts fully promoted at the new version and Healthy. overhead_ratio = push_to_promoted / floor
// (goal: at most 1.1 — the pipeline adds at most 10 % to what the rollout takes).
func BenchmarkCanary(b *testing.B) {
	const pauseFor = 30 * time.Second
	for i := 0; i < b.N; i++ {
		benchCanary(b, pauseFor)
	}
}

func benchCanary(b *testing.B, pauseFor time.Duration) {
	w := progressive(b, "bench", "canary")
	check, _ := w.checker(b, "bench-canary", nil)
	check.For, check.Interval = pauseFor, 2*time.Second
	backend, frontend := w.push(b, "wanderlust-backend", "2.0.0"), w.push(b, "wanderlust-frontend", "2.0.0")
	argo := w.argo(b, "bench-canary")
	argo.Log = nil
	rep, err := Run(context.Background(), Options{
		Images: []string{backend, frontend}, Bump: bump.Options{Git: w.gitOpts("bench"), Env: "canary"},
		Argo: &argo, Rollback: true, CanaryProbe: check,
	}, nil)
	if err != nil || rep.Result != report.Succeeded {
		b.Fatalf("%v\n%s", err, rep.Text())
	}
	var pushed, promoted time.Time
	var floor time.Duration
	steps := 0
	for _, s := range rep.Stages {
		switch {
		case s.Name == "bump":
			pushed = s.Start.Add(s.Duration)
		case s.Name == "sync":
			promoted = s.Start.Add(s.Duration)
		case strings.HasPrefix(s.Name, "step "):
			floor += s.Duration
			steps++
		}
	}
	total := promoted.Sub(pushed)
	fmt.Printf("BENCH P11 steps=%d pause_s=%.0f push_to_promoted_ms=%d floor_ms=%d overhead_ratio=%.3f\n",
		steps, pauseFor.Seconds(), total.Milliseconds(), floor.Milliseconds(), float64(total)/float64(floor))
}
