package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
)

func TestPrintDiagnosis(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    *reports.Diagnosis
		want string
	}{
		{"none made", nil, ""},
		{"nothing found", &reports.Diagnosis{Findings: []reports.Finding{}},
			"\ndiagnosis: nothing in the figures points to a fault (client side, between or server side)\n"},
		{"a finding", &reports.Diagnosis{Findings: []reports.Finding{{Class: reports.ClassBetween, Code: "proxy_idle_timeout",
			Severity: reports.SeverityCritical, Title: "A proxy cuts idle connections after about 30s",
			Evidence: []string{"60 connections ended without a close frame", "the gateway counted no heartbeat timeout"}, Fix: "Ping more often."}}},
			"\ndiagnosis: 1 finding(s)\n  CRITICAL, between: A proxy cuts idle connections after about 30s\n" +
				"    - 60 connections ended without a close frame\n    - the gateway counted no heartbeat timeout\n    fix: Ping more often.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printDiagnosis(&b, tc.d)
			if b.String() != tc.want {
				t.Errorf("got:\n%q\nwant:\n%q", b.String(), tc.want)
			}
		})
	}
}

// TestSummaryCountsEveryError: the end summary's errors are every failed connect, abnormal close,
// refusal and client-side cut — never "0 errors" beside false disconnects — and its connect_time is
// the SLO's span (dial to 101), not the TCP connect alone.
func TestSummaryCountsEveryError(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := stats.NewRecorder(start)
	rec.Add(stats.CtrConnects, 200)
	rec.Add(stats.ErrorCounter("read_timeout"), 56)
	rec.Add(loadgen.CtrFalseDisconnects, 56)
	rec.Add(stats.CloseCodeCounter(1013), 7)
	rec.Add(stats.ErrorCounter(stats.ErrUpgradeRefused), 3)
	rec.Add(stats.CloseCodeCounter(1000), 200)
	rec.Record(stats.HistConnect, time.Millisecond)
	rec.Record(stats.HistUpgrade, 4*time.Millisecond)
	r := reports.New("smoke", 1)
	r.Stats = reports.StatsFrom(rec.Snapshot())
	r.StopReason, r.Duration = reports.StopCompleted, 5*time.Second
	r.Workers = []reports.Worker{{Clients: 200, Status: reports.WorkerOK}}
	var b bytes.Buffer
	printSummary(&b, r, "out/result.json")
	for _, want := range []string{
		"smoke completed in 5s: 200 clients on 1 worker(s), 200 connects, 66 errors (read_timeout 56, close 1013 7, upgrade_refused 3, false disconnects 56)",
		"connect_time p50 4ms p99 4ms",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}
