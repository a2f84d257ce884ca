package main

import (
	"bytes"
	"testing"

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
