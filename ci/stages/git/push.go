package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
)

// movedError says the branch no longer points at the commit we built on.
type movedError struct{ now string }

func (e *movedError) Error() string {
	if e.now == "" {
		return "the remote rejected the update as stale"
	}
	return "the branch is now at " + Short(e.now)
}

// push sends objects and moves the branch from old to new, only if the branch is still at old.
func (r *run) push(ctx context.Context, old, new plumbing.Hash, objects []plumbing.Hash) error {
	var sendErr error
	err := r.retry(ctx, "push", func() error {
		sendErr = r.send(ctx, old, new, objects)
		var moved *movedError
		if errors.As(sendErr, &moved) {
			if moved.now == new.String() {
				// The branch is at our very commit: an earlier attempt landed, its reply was lost.
				r.logf("the branch is at our commit %s: an earlier push landed though its reply was lost", Short(new.String()))
				sendErr = nil
			}
			return nil // not a connection problem: the caller re-applies on the new head
		}
		if sendErr != nil && !isPermanent(sendErr) && !slices.Contains(r.uncertain, new) {
			r.uncertain = append(r.uncertain, new)
		}
		return sendErr
	})
	if err != nil {
		return err
	}
	return sendErr
}

func (r *run) send(ctx context.Context, old, new plumbing.Hash, objects []plumbing.Hash) error {
	sess, err := r.cli.NewReceivePackSession(r.ep, r.auth)
	if err != nil {
		return err
	}
	defer sess.Close()

	adv, cur, err := r.advertisedHead(ctx, sess)
	if err != nil {
		return err
	}
	if cur != old {
		return &movedError{now: cur.String()}
	}

	var pack bytes.Buffer
	if _, err := packfile.NewEncoder(&pack, r.st, false).Encode(objects, 10); err != nil {
		return permanent(fmt.Errorf("encode pack: %w", err))
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(adv.Capabilities)
	req.Commands = []*packp.Command{{Name: r.ref, Old: old, New: new}}
	req.Packfile = io.NopCloser(&pack)
	status, err := sess.ReceivePack(ctx, req)
	if status != nil && status.UnpackStatus != "" && status.UnpackStatus != "ok" {
		return fmt.Errorf("the remote could not unpack our objects: %s", status.UnpackStatus)
	}
	if status != nil {
		for _, cs := range status.CommandStatuses {
			if cs.Status != "ok" {
				return refused(fmt.Sprintf("the remote refused the update of %s: %s", cs.ReferenceName, cs.Status))
			}
		}
	}
	if err != nil && strings.Contains(err.Error(), "command error on") {
		return refused(err.Error()) // go-git reports a refused ref update as an error
	}
	return err
}

// refused classifies the remote's refusal of our ref update: another push that moved the branch
// between our read and our update (we rebase and retry), or a rule of the remote (we stop).
func refused(msg string) error {
	for _, stale := range []string{"lock", "fetch first", "non-fast-forward", "stale", "failed to update ref", "old sha"} {
		if strings.Contains(strings.ToLower(msg), stale) {
			return &movedError{}
		}
	}
	return permanent(errors.New(msg))
}
