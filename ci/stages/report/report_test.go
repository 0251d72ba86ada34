package report

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRenderings(t *testing.T) {
	r := New("Wanderlust deploy", "dev")
	commit := time.Now().Add(-time.Hour)
	r.DORA.SourceCommitTime = &commit
	r.Begin("bump")(map[string]string{"sha": "abc|def"}, nil)
	r.Skip("scan", "--skip-scan")
	r.Begin("sync")(map[string]string{"app": "wanderlust-dev"}, errors.New("health <Degraded>"))
	r.DORA.Failed, r.DORA.RolledBack, r.DORA.LeadTime = true, true, time.Hour
	r.Finish(errors.New("failed"))

	var back Run
	if err := json.Unmarshal(r.JSON(), &back); err != nil || back.Result != Failed || len(back.Stages) != 3 || back.Stages[2].Error != "health <Degraded>" || !back.DORA.RolledBack {
		t.Errorf("JSON round trip: %+v %v", back, err)
	}
	md := r.Markdown()
	for _, want := range []string{"❌ Wanderlust deploy: failed", "| bump | succeeded |", "sha=`abc\\|def`", "| scan | skipped |", "error: health <Degraded>", "rolled back: true"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	h := r.HTML()
	if strings.Contains(h, "<Degraded>") || !strings.Contains(h, "&lt;Degraded&gt;") || !strings.Contains(h, "#cf222e") {
		t.Errorf("HTML not escaped or not marked failed:\n%s", h)
	}
	if txt := r.Text(); !strings.Contains(txt, "Wanderlust deploy: FAILED") || !strings.Contains(txt, "lead time (commit → Healthy): 1h0m0s") {
		t.Errorf("text:\n%s", txt)
	}
}
