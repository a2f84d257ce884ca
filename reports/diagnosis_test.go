package reports

import (
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/chaos"
	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver/protocol"
)

// synth builds a result of a run of clients over seconds one-second intervals: fill records into
// the recorder (the whole run's figures) and perSecond adds counters to each second.
type synth struct {
	clients   int
	seconds   int
	scale     float64
	fill      func(rec *stats.Recorder)
	perSecond func(s int) map[string]int64
	telemetry func(s int) map[string]float64
	events    []Event
	reliable  bool
	ownProc   bool
}

func (sy synth) result(t *testing.T) *Result {
	t.Helper()
	start := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	rec := stats.NewRecorder(start)
	if sy.fill != nil {
		sy.fill(rec)
	}
	r := New("synthetic", 1)
	var series stats.Series
	for s := 1; s <= sy.seconds; s++ {
		if sy.perSecond != nil {
			for k, v := range sy.perSecond(s) {
				rec.Add(k, v)
			}
		}
		series = append(series, rec.Tick(start.Add(time.Duration(s)*time.Second)))
		if sy.telemetry != nil {
			r.Telemetry.Points = append(r.Telemetry.Points, TelemetryPoint{Second: s, At: start.Add(time.Duration(s) * time.Second), Values: sy.telemetry(s), Nodes: 1})
		}
	}
	var err error
	if r.Series, err = SeriesFrom(series); err != nil {
		t.Fatal(err)
	}
	r.Stats = StatsFrom(rec.Snapshot())
	if len(r.Telemetry.Points) > 0 {
		r.Telemetry.Status = TelemetryOK
		r.Telemetry.Summary = summarize(r.Telemetry.Points)
	}
	r.Started, r.Ended, r.Duration = start, start.Add(time.Duration(sy.seconds)*time.Second), time.Duration(sy.seconds)*time.Second
	r.Workers = []Worker{{Clients: sy.clients, Status: WorkerOK}}
	r.Reliable = sy.reliable
	r.Target = Target{Kind: "embedded", Nodes: 1, OwnProcess: sy.ownProc}
	if sy.scale != 0 {
		r.Scenario = &Scenario{Name: "synthetic", TimeScale: sy.scale}
	}
	r.Events = sy.events
	return r
}

// summarize is the part of the telemetry summary the rules read.
func summarize(ps []TelemetryPoint) TelemetrySummary {
	var s TelemetrySummary
	for _, p := range ps {
		s.PeakConnections = max(s.PeakConnections, p.Values[protocol.MetricConnectionsActive])
		s.PeakOrphaned = max(s.PeakOrphaned, p.Values[protocol.MetricOrphanedSubscriptions])
	}
	s.FinalOrphaned = ps[len(ps)-1].Values[protocol.MetricOrphanedSubscriptions]
	return s
}

func codes(d *Diagnosis) string {
	var out []string
	for _, f := range d.Findings {
		out = append(out, f.Class+"/"+f.Code+"/"+f.Severity)
	}
	return strings.Join(out, " ")
}

func TestDiagnose(t *testing.T) {
	faultAt := func(sec int, action chaos.Action, typ string) Event {
		at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC).Add(time.Duration(sec) * time.Second)
		return Event{At: at, Kind: EventFault, Fault: &Fault{Action: string(action), Target: "office-net", Offset: time.Duration(sec) * time.Second, Params: map[string]string{"type": typ}}}
	}
	for _, tc := range []struct {
		name     string
		run      synth
		want     string   // class/code/severity of every finding, in order
		evidence []string // fragments the evidence must hold
	}{
		{"a quiet healthy run", synth{clients: 100, seconds: 10, reliable: true, ownProc: true,
			fill: func(rec *stats.Recorder) {
				for i := range 1000 {
					rec.Record(stats.HistPingRTT, time.Duration(200+i)*time.Microsecond)
					rec.Record(stats.HistFanoutServer, time.Duration(300+i)*time.Microsecond)
				}
			},
			telemetry: func(s int) map[string]float64 {
				return map[string]float64{protocol.MetricConnectionsActive: 100, protocol.MetricProcessResidentMemory: 40e6 + float64(s)*1e4}
			}}, "", nil},

		{"reconnect storm after a fault", synth{clients: 1000, seconds: 6, reliable: true,
			perSecond: func(s int) map[string]int64 {
				if s == 3 || s == 4 {
					return map[string]int64{stats.CtrReconnectAttempts: 600, stats.CtrReconnects: 500}
				}
				return nil
			},
			events: []Event{faultAt(2, chaos.ActionDisableProxy, "")}},
			"client-side/reconnect_storm/critical",
			[]string{"600 reconnect attempts in second 3 of the run (60% of the 1000 clients)", "the storm lasted 2 seconds", `it followed the fault "disable_proxy on office-net" at 2s`}},

		{"a burst scaled down is no storm", synth{clients: 1000, seconds: 6, scale: 0.05,
			perSecond: func(s int) map[string]int64 {
				if s == 3 {
					return map[string]int64{stats.CtrReconnectAttempts: 600}
				}
				return nil
			}}, "", nil},

		{"constant retry", synth{clients: 50, seconds: 5,
			fill: func(rec *stats.Recorder) {
				for i := range 200 {
					rec.Record(loadgen.HistReconnectPlanned, time.Second)
					rec.RecordValue(loadgen.HistReconnectAttemptsPerClient, int64(4+i%9))
				}
			}},
			"client-side/constant_retry/critical", []string{"one client made 12", "every retry waited about the same: p10 1s, median 1s, p90 1s"}},

		{"lock-step backoff", synth{clients: 50, seconds: 5,
			perSecond: func(s int) map[string]int64 { return map[string]int64{stats.CtrReconnectAttempts: 30} },
			fill: func(rec *stats.Recorder) {
				for i := range 150 {
					rec.Record(loadgen.HistReconnectPlanned, []time.Duration{time.Second, 1500 * time.Millisecond, 2250 * time.Millisecond}[i%3])
					rec.RecordValue(loadgen.HistReconnectAttemptsPerClient, 3)
				}
			}},
			"client-side/lockstep_backoff/warning", []string{"100% of 150 reconnect delays were one of 3 values (1s, 1.5s, 2.25s)"}},

		{"jittered backoff is neither", synth{clients: 50, seconds: 5,
			perSecond: func(s int) map[string]int64 { return map[string]int64{stats.CtrReconnectAttempts: 30} },
			fill: func(rec *stats.Recorder) {
				for i := range 150 {
					rec.Record(loadgen.HistReconnectPlanned, time.Second+time.Duration(i)*7*time.Millisecond)
					rec.RecordValue(loadgen.HistReconnectAttemptsPerClient, 5)
				}
			}}, "", nil},

		{"connection hoarding", synth{clients: 20, seconds: 3,
			fill: func(rec *stats.Recorder) {
				rec.Add(stats.PrefixCloseReason+protocol.ReasonConnLimit, 18)
				rec.RecordValue(loadgen.HistConnsPerUser, 5)
			}},
			"client-side/connection_hoarding/warning", []string{"18 connections were closed with 1008 conn_limit", "one user held up to 5"}},

		{"cuts by a disabled proxy are not an idle timeout", synth{clients: 60, seconds: 6,
			perSecond: func(s int) map[string]int64 {
				if s == 4 {
					return map[string]int64{stats.CloseCodeCounter(1006): 60}
				}
				return nil
			},
			fill: func(rec *stats.Recorder) {
				for i := range 60 {
					rec.Record(loadgen.HistAbnormalCloseAge, 3*time.Second+time.Duration(i)*time.Millisecond)
				}
			},
			events: []Event{faultAt(3, chaos.ActionDisableProxy, "")}}, "", nil},

		{"cuts while the gateway timed them out are not between", synth{clients: 60, seconds: 6,
			fill: func(rec *stats.Recorder) {
				for i := range 60 {
					rec.Record(loadgen.HistAbnormalCloseAge, 3*time.Second+time.Duration(i)*time.Millisecond)
				}
			},
			telemetry: func(s int) map[string]float64 {
				return map[string]float64{protocol.MetricHeartbeatTimeouts: float64(100 + 10*s)}
			}}, "", nil},

		{"a few cuts at one age are not an idle timeout", synth{clients: 60, seconds: 6,
			fill: func(rec *stats.Recorder) {
				for i := range 6 {
					rec.Record(loadgen.HistAbnormalCloseAge, 8*time.Second+time.Duration(i)*time.Millisecond)
				}
			}}, "", nil},

		{"cuts at scattered ages are not an idle timeout", synth{clients: 60, seconds: 6,
			fill: func(rec *stats.Recorder) {
				for i := range 60 {
					rec.Record(loadgen.HistAbnormalCloseAge, time.Duration(i+1)*100*time.Millisecond)
				}
			}}, "", nil},

		{"memory growth at steady load", synth{clients: 100, seconds: 12, ownProc: true,
			telemetry: func(s int) map[string]float64 {
				return map[string]float64{protocol.MetricConnectionsActive: 100, protocol.MetricProcessResidentMemory: 40e6 + float64(s)*2e6,
					protocol.MetricGoGoroutines: float64(300 + 40*s)}
			}},
			"server-side/memory_growth/warning", []string{"resident memory went from 40.1MiB to 61MiB (+52%) over 11s while connections held between 90 and 100", "goroutines went from 340 to 780"}},

		{"memory of a gateway sharing the generator's process says nothing", synth{clients: 100, seconds: 12,
			telemetry: func(s int) map[string]float64 {
				return map[string]float64{protocol.MetricConnectionsActive: 100, protocol.MetricProcessResidentMemory: 40e6 + float64(s)*2e6}
			}}, "", nil},

		{"slow consumers", synth{clients: 36, seconds: 3,
			fill: func(rec *stats.Recorder) {
				rec.Add(stats.PrefixCloseReason+protocol.ReasonSlowConsumer, 54)
				rec.Record(stats.HistFanout, 40*time.Millisecond)
			},
			telemetry: func(s int) map[string]float64 {
				return map[string]float64{protocol.MetricSendQueueDepth: float64(100 * s)}
			}},
			"server-side/slow_consumers/warning", []string{"54 connections were closed with 1008 slow_consumer", "send queues held up to 300 frames", "fan-out latency p99 40ms"}},

		{"shedding, counted from the run's own share", synth{clients: 100, seconds: 3,
			fill: func(rec *stats.Recorder) {
				rec.Add(stats.CtrConnectAttempts, 300)
				rec.Add(stats.CloseCodeCounter(1013), 40)
				rec.Add(stats.PrefixCloseReason+protocol.ReasonShed, 40)
				rec.Add(stats.ErrorCounter(stats.ErrUpgradeRefused), 10)
			},
			telemetry: func(s int) map[string]float64 {
				return map[string]float64{protocol.MetricShedTotal: float64(5000 + 25*(s-1))}
			}},
			"server-side/shedding/critical", []string{"the gateway shed 50 connections", "told to try again later 40 times (1013): shed 40", "10 upgrades were refused", "17% of 300 connection attempts were refused"}},

		{"orphaned subscriptions", synth{clients: 10, seconds: 3,
			telemetry: func(s int) map[string]float64 {
				return map[string]float64{protocol.MetricOrphanedSubscriptions: float64(40 * s)}
			}},
			"server-side/orphaned_subscriptions/critical", []string{"120 room memberships whose connection had closed were still held after the run (ws_orphaned_subscriptions, peak 120)"}},

		{"gateway lag on a reliable run", synth{clients: 10, seconds: 3, reliable: true,
			fill: func(rec *stats.Recorder) {
				for i := range 100 {
					rec.Record(stats.HistPingRTT, time.Duration(i)*5*time.Millisecond)
					rec.Record(stats.HistScheduleLag, time.Millisecond)
				}
			}},
			"server-side/event_loop_lag/warning", []string{"WebSocket ping round trip p99 490ms, median 245ms", "the generator kept its schedule (schedule lag p99 1ms)"}},

		{"lag on an unreliable run is the generator's", synth{clients: 10, seconds: 3,
			fill: func(rec *stats.Recorder) {
				for i := range 100 {
					rec.Record(stats.HistPingRTT, time.Duration(i)*5*time.Millisecond)
				}
			}}, "", nil},

		{"lag under a latency toxic is the proxy's", synth{clients: 10, seconds: 3, reliable: true,
			events: []Event{faultAt(1, chaos.ActionAddToxic, "latency")},
			fill: func(rec *stats.Recorder) {
				for i := range 100 {
					rec.Record(stats.HistPingRTT, time.Duration(i)*5*time.Millisecond)
				}
			}}, "", nil},

		{"findings in the flowchart's order", synth{clients: 20, seconds: 3,
			fill: func(rec *stats.Recorder) {
				rec.Add(stats.PrefixCloseReason+protocol.ReasonSlowConsumer, 1)
				rec.Add(stats.PrefixCloseReason+protocol.ReasonConnLimit, 1)
			},
			telemetry: func(s int) map[string]float64 { return map[string]float64{protocol.MetricOrphanedSubscriptions: 1} }},
			"client-side/connection_hoarding/warning server-side/orphaned_subscriptions/critical server-side/slow_consumers/warning", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Diagnose(tc.run.result(t))
			if got := codes(d); got != tc.want {
				t.Fatalf("findings %q, want %q\n%+v", got, tc.want, d.Findings)
			}
			var ev []string
			for _, f := range d.Findings {
				if f.Title == "" || f.Fix == "" || len(f.Evidence) == 0 {
					t.Errorf("finding without title, fix or evidence: %+v", f)
				}
				ev = append(ev, f.Evidence...)
			}
			all := strings.Join(ev, "\n")
			for _, w := range tc.evidence {
				if !strings.Contains(all, w) {
					t.Errorf("evidence lacks %q:\n%s", w, all)
				}
			}
		})
	}
}

func TestDiagnosisIsNeverNil(t *testing.T) {
	d := Diagnose(&Result{})
	if d == nil || d.Findings == nil || len(d.Findings) != 0 {
		t.Fatalf("%+v", d)
	}
}
