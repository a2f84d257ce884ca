package agent

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeJob feeds arbitrary bodies to the agent's job decoder: it never panics, and a job it
// accepts has a usable id, a worker within its workers, a start instant and a plan object, and
// encodes back to a job it accepts again.
func FuzzDecodeJob(f *testing.F) {
	start := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, j := range []Job{
		{ID: "run-0", Worker: 0, Workers: 2, StartAt: start, Plan: json.RawMessage(`{"name":"p"}`), Target: json.RawMessage(`{"endpoints":[]}`)},
		{ID: "x", Worker: 1, Workers: 2, StartAt: start, Plan: json.RawMessage(`{}`)},
	} {
		b, _ := json.Marshal(j)
		f.Add(b)
	}
	for _, s := range []string{`{}`, `{"id":"a","workers":1,"start_at":"2026-12-02T12:00:00Z","plan":[]}`, `{"id":"a"}{"id":"b"}`, `null`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		job, err := DecodeJob(bytes.NewReader(body))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "bad job: ") {
				t.Fatalf("error %q does not say it is a bad job", err)
			}
			return
		}
		if job.ID == "" || job.Worker < 0 || job.Worker >= job.Workers || job.StartAt.IsZero() {
			t.Fatalf("accepted %+v", job)
		}
		b, err := json.Marshal(job)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeJob(bytes.NewReader(b)); err != nil {
			t.Fatalf("accepted %q but not its own encoding %q: %v", body, b, err)
		}
	})
}
