// Wanderlust's CI + GitOps pipeline as a Dagger module: scan, build, publish, bump the manifests,
// sync Argo CD and notify, each stage a typed function that runs the same on a laptop and in CI.
//
// This file is the table of contents: every function is a thin call into a package under stages/.
package main

import (
	"context"
	"fmt"
	"os"

	"wanderlust.dev/pipeline/ci/internal/dagger"
	"wanderlust.dev/pipeline/ci/stages/bump"
	"wanderlust.dev/pipeline/ci/stages/git"
)

// Wanderlust is the pipeline of the Wanderlust travel blog (Vite/React frontend, Node/Express backend).
type Wanderlust struct{}

// Bump sets image tags and/or digests in an environment's manifests (a kustomization's images:, or
// plain Deployments) and commits and pushes the change to the GitOps repository.
//
// Only the changed values are rewritten; comments and formatting stay. No commit is made when every
// image already has its value. If another run pushed first, the edit is re-applied on the new head
// (never force-pushed); if that run changed the same image, the bump fails with a conflict.
//
// Prints the pushed commit SHA, or "unchanged", or with --dry-run the diff that would be pushed.
func (m *Wanderlust) Bump(
	ctx context.Context,
	// Manifests repository: https://…, ssh://…, git@host:path or file://… (no credentials in the URL).
	repo string,
	// Image updates: name=tag, name=sha256:<hex> or name=tag@sha256:<hex>; name is the image
	// repository or its last path element (e.g. wanderlust-backend=v1.2.3). Repeat or comma-separate.
	image []string,
	// Environment: edits kubernetes/overlays/<env>.
	// +optional
	env string,
	// Directory or file to edit instead of an environment's overlay (e.g. kubernetes for plain Deployments).
	// +optional
	path string,
	// Branch to commit to.
	// +default="main"
	branch string,
	// HTTPS token (sent as the basic-auth password; never logged).
	// +optional
	token *dagger.Secret,
	// HTTPS user for the token.
	// +default="x-access-token"
	tokenUser string,
	// SSH private key, for ssh:// and git@host:path URLs.
	// +optional
	sshKey *dagger.Secret,
	// known_hosts lines that pin the SSH server's key (required with --ssh-key).
	// +optional
	knownHosts string,
	// Commit author name.
	// +default="Wanderlust CI"
	authorName string,
	// Commit author email.
	// +default="ci@wanderlust.invalid"
	authorEmail string,
	// Commit message template (Go text/template over .Target, .Path, .SourceCommit and .Changes with
	// .Image .File .From .To); the default names the environment and every change.
	// +optional
	message string,
	// Application commit that produced the images; added as a Source-Commit: trailer.
	// +optional
	sourceCommit string,
	// Compute the commit and print its diff; push nothing.
	// +optional
	dryRun bool,
	// How many times to push when other runs keep moving the branch.
	// +default=10
	maxAttempts int,
) (string, error) {
	updates, err := parseUpdates(image)
	if err != nil {
		return "", err
	}
	auth := git.Auth{Username: tokenUser, SSHKnownHosts: []byte(knownHosts)}
	if auth.Token, err = plaintext(ctx, token); err != nil {
		return "", err
	}
	key, err := plaintext(ctx, sshKey)
	if err != nil {
		return "", err
	}
	auth.SSHPrivateKey = []byte(key)

	res, err := bump.Run(ctx, bump.Options{
		Git: git.Options{
			URL: repo, Branch: branch, Auth: auth,
			Author:      git.Signature{Name: authorName, Email: authorEmail},
			MaxAttempts: maxAttempts, DryRun: dryRun,
			Log: func(s string) { fmt.Fprintln(os.Stderr, s) },
		},
		Env: env, Path: path, Updates: updates,
		Message: message, SourceCommit: sourceCommit,
	})
	if err != nil {
		return "", err
	}
	fmt.Fprintln(os.Stderr, res.Summary)
	switch {
	case dryRun:
		return res.Diff, nil
	case !res.Changed:
		return "unchanged", nil
	}
	return res.SHA, nil
}
