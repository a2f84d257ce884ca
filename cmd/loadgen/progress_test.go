package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/agent"
	"github.com/squall-dev/squall/loadgen/stats"
)

func TestProgressLine(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := stats.NewRecorder(t0)
	rec.AddGauge(stats.GaugeConnections, 150)
	rec.Add(stats.CtrConnects, 150)
	rec.Add(stats.ErrorCounter(stats.ErrDialRefused), 3)
	rec.Add(stats.ErrorCounter(stats.ErrRead), 2)
	rec.Add(stats.CloseCodeCounter(1013), 4) // refusals count
	rec.Add(stats.CloseCodeCounter(1000), 9) // clean closes do not
	rec.Add(stats.CtrMessagesSent, 40)
	rec.Record(stats.HistConnect, time.Millisecond) // TCP only: not the connect_time shown
	rec.Record(stats.HistUpgrade, 3*time.Millisecond)
	withConnect := rec.Tick(t0.Add(time.Second))
	rec.Record(stats.HistFanout, 12*time.Millisecond)
	withFanout := rec.Tick(t0.Add(2 * time.Second))

	tests := []struct {
		name string
		u    agent.Update
		want []string
	}{
		{"ramp with connect p99", agent.Update{Elapsed: time.Second, Merged: rec.Snapshot(), Latest: withConnect, Live: 2,
			Events: []agent.Event{{Kind: "phase", Name: "ramp"}}},
			[]string{"ramp", "conns 150/200", "connect/s 150", "sent/s 40", "errors 9", "p99 connect_time 3ms", "workers 2"}},
		{"fan-out p99 preferred, a lost worker shown", agent.Update{Elapsed: 2 * time.Second, Merged: rec.Snapshot(), Latest: withFanout, Live: 1, Lost: 1},
			[]string{"ramp", "p99 fanout 12ms", "(1 lost)"}},
		{"a lost worker's clients are not connected", agent.Update{Elapsed: 3 * time.Second, Merged: rec.Snapshot(), Latest: withFanout, Live: 1, Lost: 1, LostConnections: 60},
			[]string{"conns 90/200", "(1 lost)"}},
	}
	var buf bytes.Buffer
	pr := newProgress(&buf, "plain", 200, 2)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf.Reset()
			pr.update(tc.u)
			got := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("line %q lacks %q", got, w)
				}
			}
			if strings.Count(got, "\n") != 1 {
				t.Errorf("want one line per update, got %q", got)
			}
		})
	}
	pr.done()
}
