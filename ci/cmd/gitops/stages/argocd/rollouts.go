package argocd

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	applicationpkg "github.com/argoproj/argo-cd/v2/pkg/apiclient/application"
	"github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"wanderlust.dev/pipeline/ci/stages/intent"
	"wanderlust.dev/pipeline/ci/stages/telemetry"
)

// RolloutOptions say how the wait drives the Argo Rollouts that run our change (progressive
// delivery): at each pause of a canary (or a blue-green preview awaiting promotion) it runs the
// checks against the release under test, then resumes the Rollouts through Argo CD's resource
// actions, or aborts them; a Rollout that Argo Rollouts aborts by itself fails the wait as Degraded.
type RolloutOptions struct {
	// Names are our Rollouts (those that run what our commit changed); only they are resumed or
	// aborted, and done waits until each runs our template fully promoted.
	Names []string
	// Manual stops at the first pause: the wait ends with the outcome Paused (no error), and
	// Continue or Abort carries on later.
	Manual bool
	// Check runs at each pause against the release under test; its error aborts the Rollouts and
	// fails the wait as our change's. Nil: no checks (each pause is resumed at once).
	Check func(ctx context.Context, s Step) error
	// OnStep gets each pause once it is decided.
	OnStep func(Step)
}

// Step is one pause of our Rollouts, and what was decided there.
type Step struct {
	// N counts our pauses from 1.
	N int
	// Rollouts are the paused Rollouts as they stood.
	Rollouts []RolloutState
	// At is when the pause was seen, Took how long the checks and the action took.
	At   time.Time
	Took time.Duration
	// Check is "passed", "none" (no checks given), "not run" (manual) or "failed: " and the failing
	// check; Action what was done: "resumed", "aborted", "stopped" (manual) or "left paused" (the
	// checks failed for what is not our change).
	Check, Action string
}

// String is the step as the report lists it: "step 1: backend step 1/4 at 20 %, frontend …: checks
// passed, resumed after 1.2s".
func (s Step) String() string {
	var rs []string
	for _, r := range s.Rollouts {
		rs = append(rs, r.String())
	}
	return fmt.Sprintf("step %d: %s: checks %s, %s after %s", s.N, strings.Join(rs, ", "), s.Check, s.Action, s.Took.Round(time.Millisecond))
}

// RolloutState is where one Rollout stands, as its live object says.
type RolloutState struct {
	Name, Namespace string
	// Strategy is "canary" or "blueGreen".
	Strategy string
	// Step is the canary's current step index (0-based, as Argo Rollouts counts), Steps how many it
	// has; Weight the weight of the last setWeight reached.
	Step, Steps, Weight int
	// Phase and Message are the Rollout's own (Healthy, Progressing, Paused, Degraded).
	Phase, Message string
	// Paused: it waits at a pause; Aborted: it was aborted; Current: it runs the template the
	// workload it references last had (our sync's), fully promoted when Phase is Healthy.
	Paused, Aborted, Current bool
	// Hash is the pod template hash it is rolling out.
	Hash string
}

func (r RolloutState) String() string {
	if r.Strategy == "blueGreen" {
		return r.Name + " preview (blue-green)"
	}
	return fmt.Sprintf("%s step %d/%d at %d %%", r.Name, r.Step, r.Steps, r.Weight)
}

// RolloutActions are the resource actions the wait runs on our Rollouts (the preflight checks the
// token's RBAC for each).
var RolloutActions = []string{"resume", "abort"}

// mayRun says whether the token may run a resource action on the application's Rollouts, without
// running it: asked of an object no application has, the server checks RBAC, then answers that the
// object is not found.
func (s *session) mayRun(ctx context.Context, action string) error {
	group, version, kind, absent, ns := "argoproj.io", "v1alpha1", "Rollout", "wanderlust-preflight-absent-"+randomSuffix(), "wanderlust-preflight-absent"
	_, err := s.apps.RunResourceAction(ctx, &applicationpkg.ResourceActionRunRequest{Name: &s.o.App, AppNamespace: s.ns(),
		Namespace: &ns, ResourceName: &absent, Version: &version, Group: &group, Kind: &kind, Action: &action})
	rbac := "action/argoproj.io/Rollout/" + action
	switch st, _ := status.FromError(err); {
	case err == nil:
		return fmt.Errorf("argocd: %s: the server ran %s on an object that does not exist: refusing to rely on its answers", s.o.App, rbac)
	case st.Code() == codes.PermissionDenied:
		return fmt.Errorf("argocd: permission denied: %s runs Argo Rollouts, which deploy resumes and aborts, but the token may not %s them (RBAC: applications, %s, <project>/%s); grant it in argocd-rbac-cm or the project's roles",
			s.o.App, action, rbac, s.o.App)
	case st.Code() == codes.InvalidArgument && strings.Contains(st.Message(), "not found"):
		return nil
	}
	return s.preflightError(err)
}

// rollout is the little of an Argo Rollouts object the wait reads.
type rollout struct {
	Metadata struct {
		Name, Namespace string
		Generation      int64
	}
	Spec struct {
		Paused      bool
		WorkloadRef *struct {
			APIVersion, Kind, Name string
		} `json:"workloadRef"`
		Strategy struct {
			Canary *struct {
				Steps []struct {
					SetWeight *int            `json:"setWeight"`
					Pause     json.RawMessage `json:"pause"`
				}
			}
			BlueGreen json.RawMessage `json:"blueGreen"`
		}
	}
	Status struct {
		Phase, Message             string
		Abort                      bool
		CurrentPodHash, StableRS   string
		CurrentStepIndex           *int
		ObservedGeneration         string
		WorkloadObservedGeneration string
		PauseConditions            []struct{ Reason string }
	}
}

// isRollout reports whether an application's resource is an Argo Rollout.
func isRollout(r v1alpha1.ResourceStatus) bool {
	return r.Group == "argoproj.io" && r.Kind == "Rollout"
}

// ourRollouts lists the application's Rollouts that are ours.
func (s *session) ourRollouts(app *v1alpha1.Application) []v1alpha1.ResourceStatus {
	var out []v1alpha1.ResourceStatus
	if s.o.Rollouts == nil {
		return nil
	}
	for _, r := range app.Status.Resources {
		if isRollout(r) && slices.Contains(s.o.Rollouts.Names, r.Name) {
			out = append(out, r)
		}
	}
	return out
}

// rolloutState reads one Rollout's live object (and the generation of the workload it references)
// through Argo CD.
func (s *session) rolloutState(ctx context.Context, r v1alpha1.ResourceStatus) (RolloutState, error) {
	var ro rollout
	if err := s.resource(ctx, r.Group, r.Version, r.Kind, r.Namespace, r.Name, &ro); err != nil {
		return RolloutState{}, err
	}
	st := RolloutState{Name: r.Name, Namespace: r.Namespace, Phase: ro.Status.Phase, Message: ro.Status.Message, Aborted: ro.Status.Abort,
		Hash: ro.Status.CurrentPodHash, Paused: ro.Spec.Paused || len(ro.Status.PauseConditions) > 0}
	st.Current = ro.Status.ObservedGeneration == strconv.FormatInt(ro.Metadata.Generation, 10)
	if ref := ro.Spec.WorkloadRef; ref != nil {
		group, version, grouped := strings.Cut(ref.APIVersion, "/")
		if !grouped {
			group, version = "", ref.APIVersion
		}
		var w struct{ Metadata struct{ Generation int64 } }
		if err := s.resource(ctx, group, version, ref.Kind, r.Namespace, ref.Name, &w); err != nil {
			return st, err
		}
		st.Current = st.Current && ro.Status.WorkloadObservedGeneration == strconv.FormatInt(w.Metadata.Generation, 10)
	}
	if c := ro.Spec.Strategy.Canary; c != nil {
		st.Strategy, st.Steps = "canary", len(c.Steps)
		if i := ro.Status.CurrentStepIndex; i != nil {
			st.Step = *i
			for _, step := range c.Steps[:min(*i, len(c.Steps))] {
				if step.SetWeight != nil {
					st.Weight = *step.SetWeight
				}
			}
			if *i >= len(c.Steps) {
				st.Weight = 100
			}
		}
	} else if len(ro.Spec.Strategy.BlueGreen) > 0 {
		st.Strategy = "blueGreen"
	}
	return st, nil
}

// resource reads a live object of the application as JSON into v.
func (s *session) resource(ctx context.Context, group, version, kind, namespace, name string, v any) error {
	res, err := s.apps.GetResource(ctx, &applicationpkg.ApplicationResourceRequest{Name: &s.o.App, AppNamespace: s.ns(),
		Namespace: &namespace, ResourceName: &name, Version: &version, Group: &group, Kind: &kind})
	if err != nil {
		return s.rpcError("read "+kind+"/"+name+" of", err)
	}
	if err := json.Unmarshal([]byte(res.GetManifest()), v); err != nil {
		return fmt.Errorf("argocd: %s/%s of %s: %w", kind, name, s.o.App, err)
	}
	return nil
}

// act runs an Argo CD resource action (resume, abort, promote-full) on one of our Rollouts; the
// token needs RBAC "action/argoproj.io/Rollout/<action>" on the application (the preflight checks it).
func (s *session) act(ctx context.Context, r RolloutState, action string) error {
	ctx, span := telemetry.Start(ctx, "argocd.rollout-action", telemetry.Attr("argocd.rollout", r.Name), telemetry.Attr("argocd.action", action))
	group, version, kind := "argoproj.io", "v1alpha1", "Rollout"
	_, err := s.apps.RunResourceAction(ctx, &applicationpkg.ResourceActionRunRequest{Name: &s.o.App, AppNamespace: s.ns(),
		Namespace: &r.Namespace, ResourceName: &r.Name, Version: &version, Group: &group, Kind: &kind, Action: &action})
	telemetry.End(span, err)
	if err != nil {
		return s.rpcError(action+" Rollout "+r.Name+" of", err)
	}
	s.logf("%s: %s %s", s.o.App, action, r)
	return nil
}

// rollouts is the state of our Rollouts at one application state: what the wait does next.
type rolloutsState struct {
	states []RolloutState
	// paused are our Rollouts waiting at a pause of our template; stale ones that have not yet
	// taken up the workload's template are in notCurrent.
	paused, notCurrent []RolloutState
	// aborted are our Rollouts that were aborted (by Argo Rollouts, or by us).
	aborted []RolloutState
}

// readRollouts reads our Rollouts.
func (s *session) readRollouts(ctx context.Context, app *v1alpha1.Application) (*rolloutsState, error) {
	out := &rolloutsState{}
	for _, r := range s.ourRollouts(app) {
		st, err := s.rolloutState(ctx, r)
		if err != nil {
			return nil, err
		}
		out.states = append(out.states, st)
		switch {
		case !st.Current:
			out.notCurrent = append(out.notCurrent, st)
		case st.Aborted:
			out.aborted = append(out.aborted, st)
		case st.Paused:
			out.paused = append(out.paused, st)
		}
	}
	return out, nil
}

// pauseKey identifies a pause, so that one is decided once however many states show it.
func pauseKey(r RolloutState) string {
	return fmt.Sprintf("%s/%s@%s#%d", r.Namespace, r.Name, r.Hash, r.Step)
}

// decidePause handles our Rollouts paused at our values: manual stops, otherwise the checks run and
// the Rollouts are resumed, or aborted. It returns the wait's outcome (waiting: carry on).
func (s *session) decidePause(ctx context.Context, paused []RolloutState, now time.Time) (outcome, *Step, error) {
	var fresh []RolloutState
	for _, r := range paused {
		if !s.decided[pauseKey(r)] {
			fresh = append(fresh, r)
		}
	}
	if len(fresh) == 0 {
		return outcome{}, nil, nil
	}
	s.steps++
	step := Step{N: s.steps, Rollouts: fresh, At: now}
	ro := s.o.Rollouts
	if ro.Manual {
		step.Check, step.Action = "not run", "stopped"
		return outcome{verdict: pausedAt, reason: step.String()}, &step, nil
	}
	start := time.Now()
	step.Check = "none"
	var cerr error
	if ro.Check != nil {
		if cerr = ro.Check(ctx, step); cerr == nil {
			step.Check = "passed"
		} else {
			step.Check = "failed: " + cerr.Error()
		}
	}
	action := "resume"
	if cerr != nil {
		action = "abort"
		if s.judge.blame != nil {
			// The checks answer for what the sync carried: when that is not our change alone, the
			// pause is left to whoever owns the rest (nothing aborted, nothing rolled back).
			ours, why := s.judge.blame(intent.Failure{Revision: s.judge.syncedRev, Previous: s.judge.previous, Verification: true})
			if !ours {
				step.Check, step.Action, step.Took = "failed: "+cerr.Error(), "left paused", time.Since(start)
				return outcome{verdict: failed, reason: fmt.Sprintf("%s: check failed at %s: %v; %s; left paused", NotOurs, stepName(step.N, fresh), cerr, why)}, &step, nil
			}
		}
	}
	for _, r := range fresh {
		if err := s.act(ctx, r, action); err != nil {
			return outcome{}, nil, err
		}
		s.decided[pauseKey(r)] = true
	}
	step.Action, step.Took = action+"d", time.Since(start)
	if action == "abort" {
		step.Action = "aborted"
	}
	s.logf("%s: %s", s.o.App, step)
	if cerr != nil {
		return outcome{verdict: failed, attributable: true, aborted: true, reason: fmt.Sprintf("check failed at %s: %v; aborted", stepName(step.N, fresh), cerr)}, &step, nil
	}
	return outcome{}, &step, nil
}

// stepName says where the Rollouts stood: "step 2 (canary step 3/4, 50 %)", or "step 1 (the
// blue-green preview)"; n counts our pauses.
func stepName(n int, rs []RolloutState) string {
	if len(rs) == 0 {
		return fmt.Sprintf("step %d", n)
	}
	r := rs[0]
	if r.Strategy == "blueGreen" {
		return fmt.Sprintf("step %d (the blue-green preview)", n)
	}
	return fmt.Sprintf("step %d (canary step %d/%d, %d %%)", n, r.Step, r.Steps, r.Weight)
}

// drive completes the judge's outcome with our Rollouts: done only when each runs our template fully
// promoted (Argo CD's health of a Rollout may still be the previous version's until Argo Rollouts
// takes up the workload's new template); at a pause of ours, the checks decide (decidePause).
// Without RolloutOptions, or with no Rollout of ours, the outcome stands (a pause is waited on).
func (s *session) drive(ctx context.Context, app *v1alpha1.Application, out outcome, res *Result) (outcome, error) {
	if out.verdict == failed && out.attributable && len(s.ourRollouts(app)) > 0 {
		// Which of ours Argo Rollouts aborted by itself (its analysis, its progress deadline).
		if st, err := s.readRollouts(ctx, app); err == nil {
			s.rollouts = st.states
			out.aborted = out.aborted || len(st.aborted) > 0
		}
	}
	// Our values synced but the application's health not re-evaluated since: the Rollouts' own
	// live status (checked to be at our template) may already show a pause to decide.
	early := out.verdict == waiting && out.stale
	if out.verdict != done && out.verdict != suspended && !early {
		s.rolloutsStale = time.Time{}
		return out, nil
	}
	if len(s.ourRollouts(app)) == 0 {
		if out.verdict == suspended {
			return outcome{}, nil
		}
		return out, nil
	}
	// Argo CD's health of the application lags behind the Rollouts' own status (it is re-evaluated
	// on the controller's pass): while ours are on their way (taking up our template, or between a
	// resume and their next pause), their live objects are read again, briefly, rather than waiting
	// for the application's next state.
	var st *rolloutsState
	for deadline := time.Now().Add(settleFor); ; {
		var err error
		if st, err = s.readRollouts(ctx, app); err != nil {
			return outcome{}, err
		}

		if s.settled(st) || time.Now().After(deadline) || !sleep(ctx, settlePoll) {
			break
		}
	}
	s.rollouts = st.states
	now := s.o.Now()
	if !s.settled(st) {
		if s.rolloutsStale.IsZero() {
			s.rolloutsStale = now
		}
		return outcome{}, nil
	}
	s.rolloutsStale = time.Time{}
	if len(st.aborted) > 0 {
		// Aborted (by Argo Rollouts' own analysis or progress deadline, or by hand): Argo CD shows it
		// Degraded; the judge blames it when it is ours.
		return outcome{}, nil
	}
	if len(st.paused) > 0 {
		next, step, err := s.decidePause(ctx, st.paused, now)
		if step != nil {
			res.Steps = append(res.Steps, *step)
			if s.o.Rollouts.OnStep != nil {
				s.o.Rollouts.OnStep(*step)
			}
		}
		return next, err
	}
	// Every one of ours is fully promoted and Healthy: done when the application is Healthy (a
	// Suspended application waits on something that is not ours; stale health waits to be
	// re-evaluated).
	if out.verdict == done {
		return out, nil
	}
	return outcome{}, nil
}

// How long, and how often, drive reads our Rollouts while they are on their way.
const (
	settleFor  = 3 * time.Second
	settlePoll = 200 * time.Millisecond
)

// settled reports whether each of our Rollouts stands somewhere the wait can act on: it runs our
// template and is at a pause not yet decided, fully promoted and Healthy, or aborted. A Rollout
// resumed but not yet moving, still between steps, or not yet on our template is on its way.
func (s *session) settled(st *rolloutsState) bool {
	if len(st.notCurrent) > 0 {
		return false
	}
	for _, r := range st.states {
		switch {
		case r.Aborted:
		case r.Paused && !s.decided[pauseKey(r)]:
		case !r.Paused && r.Phase == "Healthy":
		default:
			return false
		}
	}
	return true
}
