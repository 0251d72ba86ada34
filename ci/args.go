package main

import (
	"context"
	"fmt"
	"strings"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/stages/manifest"
	"wanderlust.dev/pipeline/ci/stages/scan/findings"
)

// scanPolicy builds the gate policy from the scan flags.
func scanPolicy(failOn string, maxCVSS float64, allow []string) (*findings.Policy, error) {
	p := findings.DefaultPolicy()
	sev, err := findings.ParseSeverity(failOn)
	if err != nil {
		return nil, fmt.Errorf("--fail-on: %w", err)
	}
	if maxCVSS < 0 || maxCVSS > 10 {
		return nil, fmt.Errorf("--max-cvss %v: want a CVSS score from 0 to 10", maxCVSS)
	}
	p.FailOn, p.MaxCVSS, p.Allow = sev, maxCVSS, allow
	return &p, nil
}

// parseUpdates reads name=ref arguments; each may hold several, comma-separated.
func parseUpdates(args []string) ([]manifest.Update, error) {
	var out []manifest.Update
	for _, a := range args {
		for _, part := range strings.Split(a, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			u, err := manifest.ParseUpdate(part)
			if err != nil {
				return nil, err
			}
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("at least one --image name=tag is required")
	}
	return out, nil
}

// plaintext reads an optional secret ("" when not given). Its value goes only to the stage that uses it.
func plaintext(ctx context.Context, s *dagger.Secret) (string, error) {
	if s == nil {
		return "", nil
	}
	v, err := s.Plaintext(ctx)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return v, nil
}
