// Package sonar waits for a SonarQube analysis and reads its quality gate, over SonarQube's Web API:
// the scanner's report-task.txt names the Compute Engine task; api/ce/task is polled until the task
// ends; api/qualitygates/project_status gives the gate of the analysis it produced.
package sonar

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"wanderlust.dev/pipeline/ci/stages/scan/findings"
)

// ReportTask is what sonar-scanner writes to .scannerwork/report-task.txt.
type ReportTask struct {
	ServerURL    string
	CeTaskID     string
	DashboardURL string
	ProjectKey   string
}

// ParseReportTask reads report-task.txt (key=value lines).
func ParseReportTask(txt string) (ReportTask, error) {
	var t ReportTask
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "serverUrl":
			t.ServerURL = strings.TrimSpace(v)
		case "ceTaskId":
			t.CeTaskID = strings.TrimSpace(v)
		case "dashboardUrl":
			t.DashboardURL = strings.TrimSpace(v)
		case "projectKey":
			t.ProjectKey = strings.TrimSpace(v)
		}
	}
	if t.CeTaskID == "" {
		return t, errors.New("sonar: report-task.txt has no ceTaskId (did the scanner finish?)")
	}
	return t, nil
}

// Client talks to one SonarQube server.
type Client struct {
	// URL of the server, e.g. https://sonar.example.com.
	URL string
	// Token is a user or project analysis token (sent as HTTP basic auth user, the form every
	// SonarQube version accepts; never logged).
	Token string
	// Poll is the delay between task status reads (default 2s).
	Poll time.Duration
	// HTTP is the client to use (default: 30s timeout per request).
	HTTP *http.Client
}

// ErrTimeout is wrapped when the task or the gate did not arrive within the context's deadline.
var ErrTimeout = errors.New("sonar: timed out")

// Wait polls the Compute Engine task until it ends and returns the quality gate of its analysis.
// The context's deadline bounds the wait.
func (c *Client) Wait(ctx context.Context, task ReportTask) (*findings.QualityGate, error) {
	poll := c.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	var analysisID, last string
	for {
		var resp struct {
			Task struct {
				Status       string `json:"status"`
				AnalysisID   string `json:"analysisId"`
				ErrorMessage string `json:"errorMessage"`
			} `json:"task"`
		}
		if err := c.get(ctx, "/api/ce/task", url.Values{"id": {task.CeTaskID}}, &resp); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w waiting for task %s (last status %q)", ErrTimeout, task.CeTaskID, last)
			}
			return nil, err
		}
		last = resp.Task.Status
		switch last {
		case "SUCCESS":
			analysisID = resp.Task.AnalysisID
		case "FAILED", "CANCELED":
			return nil, fmt.Errorf("sonar: analysis task %s %s: %s", task.CeTaskID, strings.ToLower(last), resp.Task.ErrorMessage)
		case "PENDING", "IN_PROGRESS":
		default:
			return nil, fmt.Errorf("sonar: task %s has unknown status %q", task.CeTaskID, last)
		}
		if analysisID != "" {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w waiting for task %s (last status %q)", ErrTimeout, task.CeTaskID, last)
		case <-time.After(poll):
		}
	}

	var gate struct {
		ProjectStatus struct {
			Status     string               `json:"status"`
			Conditions []findings.Condition `json:"conditions"`
		} `json:"projectStatus"`
	}
	if err := c.get(ctx, "/api/qualitygates/project_status", url.Values{"analysisId": {analysisID}}, &gate); err != nil {
		return nil, err
	}
	switch gate.ProjectStatus.Status {
	case "OK", "WARN", "ERROR", "NONE":
	default:
		return nil, fmt.Errorf("sonar: quality gate status %q is not one of OK, WARN, ERROR, NONE", gate.ProjectStatus.Status)
	}
	return &findings.QualityGate{Status: gate.ProjectStatus.Status, Conditions: gate.ProjectStatus.Conditions, URL: task.DashboardURL}, nil
}

func (c *Client) get(ctx context.Context, path string, q url.Values, into any) error {
	u, err := url.Parse(strings.TrimRight(c.URL, "/") + path)
	if err != nil {
		return fmt.Errorf("sonar: server URL: %w", err)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.Token, "")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("sonar: GET %s: %w", path, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("sonar: GET %s: 401 unauthorized: the token is missing, wrong or expired", path)
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("sonar: GET %s: 403 forbidden: the token may not browse this project", path)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("sonar: GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("sonar: GET %s: %w", path, err)
	}
	return nil
}
