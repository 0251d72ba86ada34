package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/stages/telemetry"
)

// Webhook posts the run's summary as a Slack-compatible incoming-webhook message ({"text": …}, which
// Slack, Mattermost, Rocket.Chat and Teams' Slack-compatible endpoints accept). The URL is a secret
// (it embeds a token): it never appears in an error, a log line or a span.
func Webhook(ctx context.Context, webhookURL string, r *report.Run) (err error) {
	ctx, span := telemetry.Start(ctx, "notify.webhook", telemetry.Attr("notify.subject", Subject(r)))
	defer func() { telemetry.End(span, err) }()
	u, perr := url.Parse(webhookURL)
	if perr != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("notify: the webhook URL is not an http(s) URL")
	}
	body, _ := json.Marshal(map[string]string{"text": summary(r)})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, webhookURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("notify: webhook to %s: %s", u.Host, scrubURL(err.Error(), u))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("notify: webhook to %s answered %s: %s", u.Host, resp.Status, scrubURL(string(b), u))
	}
	return nil
}

// scrubURL removes the webhook URL and its secret parts (path, query, user info) from s.
func scrubURL(s string, u *url.URL) string {
	s = strings.ReplaceAll(s, u.String(), "<webhook URL>")
	for _, part := range []string{u.EscapedPath(), u.Path, u.RawQuery, u.User.String()} {
		if len(part) > 1 {
			s = strings.ReplaceAll(s, part, "<secret>")
		}
	}
	return s
}

// summary is the message: the subject, the reason, one line per stage and the DORA figures.
func summary(r *report.Run) string {
	var b strings.Builder
	icon := map[string]string{report.Failed: ":x:", report.NotOurs: ":x:", report.Superseded: ":fast_forward:"}[r.Result]
	if icon == "" {
		icon = ":white_check_mark:"
	}
	fmt.Fprintf(&b, "%s *%s*\n", icon, Subject(r))
	if r.Reason != "" {
		fmt.Fprintf(&b, "%s\n", r.Reason)
	}
	for _, s := range r.Stages {
		fmt.Fprintf(&b, "• %s: %s (%s)\n", s.Name, s.Status, s.Duration.Round(time.Millisecond))
	}
	if r.DORA.LeadTime > 0 {
		fmt.Fprintf(&b, "lead time %s; ", r.DORA.LeadTime.Round(time.Second))
	}
	fmt.Fprintf(&b, "change failed: %v, rolled back: %v", r.DORA.Failed, r.DORA.RolledBack)
	return b.String()
}
