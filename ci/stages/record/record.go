// Package record is the machine-readable record every deployment leaves in the GitOps repository
// itself: trailers on the deployment's commit (Source-Commit, Source-Commit-Time, Deploy-Run,
// Deploy-Env) and, once the outcome is known, a git note on that commit (refs/notes/deployments) with
// the result, the Healthy time, the verification, the rollback and the time to restore. Delivery
// metrics are computed from nothing else.
package record

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/stages/git"
)

// Trailer keys on a deployment commit.
const (
	SourceCommit     = "Source-Commit"
	SourceCommitTime = "Source-Commit-Time"
	DeployRun        = "Deploy-Run"
	DeployEnv        = "Deploy-Env"
	RollsBack        = "Rolls-Back"
)

// NewRunID names a run: the Deploy-Run trailer and the run id of its Argo CD operation.
func NewRunID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// Deployment is the note on a deployment's commit.
type Deployment struct {
	Commit           string     `json:"commit"`
	Run              string     `json:"run"`
	Env              string     `json:"env"`
	Result           string     `json:"result"` // succeeded, failed, superseded, already deployed, paused
	Reason           string     `json:"reason,omitempty"`
	ChangeFailed     bool       `json:"changeFailed"` // a failure of the deployed change (DORA)
	SourceCommit     string     `json:"sourceCommit,omitempty"`
	SourceCommitTime *time.Time `json:"sourceCommitTime,omitempty"`
	Started          time.Time  `json:"started"`
	// Base is the branch head the run started from.
	Base     string     `json:"base,omitempty"`
	Healthy  *time.Time `json:"healthy,omitempty"` // when our values ran, Synced and Healthy
	FailedAt *time.Time `json:"failedAt,omitempty"`
	// Verification is the post-deploy checks' summary, by URL.
	Verification map[string]string `json:"verification,omitempty"`
	RolledBack   bool              `json:"rolledBack"`
	// CanaryAborted: the change failed at a canary or blue-green step and was aborted before it
	// reached everyone.
	CanaryAborted bool       `json:"canaryAborted,omitempty"`
	Revert        string     `json:"revert,omitempty"`   // the rollback's commit
	Restored      *time.Time `json:"restored,omitempty"` // Healthy again after the rollback
}

// Trailers returns the trailers of a deployment commit, in order.
func Trailers(run, env string, sourceCommitTime time.Time) [][2]string {
	t := [][2]string{{DeployRun, run}, {DeployEnv, env}}
	if !sourceCommitTime.IsZero() {
		t = append(t, [2]string{SourceCommitTime, sourceCommitTime.UTC().Format(time.RFC3339)})
	}
	return t
}

// ParseTrailers reads the trailers of a commit message (its last paragraph's "Key: value" lines).
func ParseTrailers(message string) map[string]string {
	out := map[string]string{}
	paras := strings.Split(strings.TrimSpace(strings.ReplaceAll(message, "\r\n", "\n")), "\n\n")
	for _, line := range strings.Split(paras[len(paras)-1], "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if ok && k != "" && !strings.ContainsAny(k, " \t") {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// WriteRun records a run that made no deployment commit, as a line of JSON appended to the note on
// base, the branch head the run started from (git.RunsRef).
func WriteRun(ctx context.Context, g git.Options, base string, d Deployment) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if _, err := git.AppendNote(ctx, g, git.RunsRef, base, append(b, '\n')); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// ReadRuns parses the run records of the notes of git.RunsRef (a line of JSON each).
func ReadRuns(notes map[string][]byte) []Deployment {
	var out []Deployment
	for _, n := range notes {
		for _, line := range strings.Split(string(n), "\n") {
			var d Deployment
			if strings.TrimSpace(line) != "" && json.Unmarshal([]byte(line), &d) == nil {
				out = append(out, d)
			}
		}
	}
	return out
}

// Read returns the note of a deployment's commit (nil when it has none).
func Read(ctx context.Context, g git.Options, commit string) (*Deployment, error) {
	notes, err := git.ReadNotes(ctx, g, git.NotesRef)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	b, ok := notes[commit]
	if !ok {
		return nil, nil
	}
	var d Deployment
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("record: the note on %s: %w", git.Short(commit), err)
	}
	return &d, nil
}

// Write attaches (or replaces) the deployment's note, with the compare-and-swap and retry rules of
// every push.
func Write(ctx context.Context, g git.Options, d Deployment) error {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	if _, err := git.AddNote(ctx, g, git.NotesRef, d.Commit, append(b, '\n')); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}
