package sonar

// SonarQube cannot run here: these tests use a stand-in HTTP server that speaks the documented Web API
// (api/ce/task, api/qualitygates/project_status) with basic-auth tokens, as SonarQube does.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const token = "squ_planted0123456789abcdef"

// standIn serves the Web API: the task reports each status of statuses in turn (the last one
// sticks), and the analysis has the given gate.
func standIn(t *testing.T, statuses []string, gate string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, _, ok := r.BasicAuth(); !ok || u != token {
			http.Error(w, `{"errors":[{"msg":"Authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/ce/task":
			if r.URL.Query().Get("id") != "AYtask1" {
				http.Error(w, `{"errors":[{"msg":"No activity found"}]}`, http.StatusNotFound)
				return
			}
			i := int(polls.Add(1)) - 1
			st := statuses[min(i, len(statuses)-1)]
			analysis := ""
			if st == "SUCCESS" {
				analysis = "AYanalysis1"
			}
			fmt.Fprintf(w, `{"task":{"id":"AYtask1","type":"REPORT","status":%q,"analysisId":%q,"errorMessage":"boom in the stand-in"}}`, st, analysis)
		case "/api/qualitygates/project_status":
			if r.URL.Query().Get("analysisId") != "AYanalysis1" {
				http.Error(w, "unknown analysis", http.StatusNotFound)
				return
			}
			fmt.Fprintf(w, `{"projectStatus":{"status":%q,"conditions":[{"status":%q,"metricKey":"new_coverage","comparator":"LT","errorThreshold":"80","actualValue":"41.2"}]}}`, gate, gate)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &polls
}

const reportTask = `projectKey=wanderlust
serverUrl=http://sonar.invalid
serverVersion=10.7.0
dashboardUrl=http://sonar.invalid/dashboard?id=wanderlust
ceTaskId=AYtask1
ceTaskUrl=http://sonar.invalid/api/ce/task?id=AYtask1
`

func task(t *testing.T) ReportTask {
	rt, err := ParseReportTask(reportTask)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestStandInPendingThenSuccessGivesTheGate(t *testing.T) {
	srv, polls := standIn(t, []string{"PENDING", "IN_PROGRESS", "SUCCESS"}, "ERROR")
	c := &Client{URL: srv.URL, Token: token, Poll: 5 * time.Millisecond}
	gate, err := c.Wait(context.Background(), task(t))
	if err != nil {
		t.Fatal(err)
	}
	if gate.Status != "ERROR" || len(gate.Conditions) != 1 || gate.Conditions[0].ActualValue != "41.2" || gate.URL != "http://sonar.invalid/dashboard?id=wanderlust" {
		t.Errorf("gate = %+v", gate)
	}
	if polls.Load() != 3 {
		t.Errorf("%d polls, want 3", polls.Load())
	}
}

func TestStandInFailedTask(t *testing.T) {
	srv, _ := standIn(t, []string{"PENDING", "FAILED"}, "OK")
	_, err := (&Client{URL: srv.URL, Token: token, Poll: time.Millisecond}).Wait(context.Background(), task(t))
	if err == nil || !strings.Contains(err.Error(), "failed: boom in the stand-in") {
		t.Fatalf("err = %v", err)
	}
}

func TestStandInTimeoutNamesTheLastStatus(t *testing.T) {
	srv, _ := standIn(t, []string{"IN_PROGRESS"}, "OK")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Millisecond)
	defer cancel()
	_, err := (&Client{URL: srv.URL, Token: token, Poll: 10 * time.Millisecond}).Wait(ctx, task(t))
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), `"IN_PROGRESS"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestStandInWrongToken(t *testing.T) {
	srv, _ := standIn(t, []string{"SUCCESS"}, "OK")
	_, err := (&Client{URL: srv.URL, Token: "squ_wrong0000000000", Poll: time.Millisecond}).Wait(context.Background(), task(t))
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "squ_wrong") {
		t.Fatalf("err = %v", err)
	}
}

func TestStandInOKGateAndUnknownTask(t *testing.T) {
	srv, _ := standIn(t, []string{"SUCCESS"}, "OK")
	c := &Client{URL: srv.URL, Token: token}
	gate, err := c.Wait(context.Background(), task(t))
	if err != nil || gate.Status != "OK" {
		t.Fatalf("gate %+v, %v", gate, err)
	}
	_, err = c.Wait(context.Background(), ReportTask{CeTaskID: "nope"})
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown task: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), token) {
		t.Error("token in error")
	}
}

func TestParseReportTask(t *testing.T) {
	rt := task(t)
	if rt.CeTaskID != "AYtask1" || rt.ProjectKey != "wanderlust" || rt.ServerURL != "http://sonar.invalid" {
		t.Errorf("%+v", rt)
	}
	if _, err := ParseReportTask("projectKey=x\n"); err == nil {
		t.Error("report-task.txt without ceTaskId accepted")
	}
}
