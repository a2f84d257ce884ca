package scenarios

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/reports"
)

// Step is one step of a step ramp, graded on its own: a hold phase of the run and the figures of
// its window alone (client counters and histograms from the one-second series, the gateway's
// telemetry and the faults inside it).
type Step struct {
	Phase string    // the hold phase's name
	Start time.Time // window of the step: its ramp and its hold
	End   time.Time
	// Connections is the most connections open in any second of the step.
	Connections int64
	// SentRate and DeliveredRate are broadcasts sent by the clients and received by them, per second
	// over the step.
	SentRate, DeliveredRate float64
	Verdicts                []Verdict
}

// Pass reports whether every SLO held over the step.
func (st Step) Pass() bool { return Passed(st.Verdicts) }

// Steps grades a run step by step: every hold phase of the scenario is a step, together with the
// ramp just before it (in a step ramp each ramp with a target is followed by the hold that
// measures it; the ramp's connects belong to the step), and every SLO is graded against the
// figures of that step's window only, so that a capacity run says at which step an SLO broke. The
// window takes the one-second intervals whose middle falls inside it; an SLO without data in a
// step fails that step, as it would fail a run.
func Steps(s *Scenario, r *reports.Result) []Step {
	if s == nil || r == nil {
		return nil
	}
	var out []Step
	for i, ph := range r.Phases {
		if i >= len(s.Phases) || s.Phases[i].Kind != PhaseHold {
			continue
		}
		start, end := ph.Start, ph.End
		if end.IsZero() {
			end = r.Ended
		}
		if i > 0 && s.Phases[i-1].Kind == PhaseRamp {
			start = r.Phases[i-1].Start // the step's own ramp: its connects belong to it
		}
		w := window(r, start, end)
		st := Step{Phase: ph.Name, Start: start, End: end}
		for _, iv := range w.Series {
			st.Connections = max(st.Connections, iv.Gauges[stats.GaugeConnections])
		}
		if secs := end.Sub(start).Seconds(); secs > 0 {
			st.SentRate = float64(w.Stats.Counter(stats.CtrMessagesSent)) / secs
			st.DeliveredRate = float64(w.Stats.Counter(stats.CtrMessagesReceived)) / secs
		}
		st.Verdicts = Grade(s.SLOs, ResultSource{Result: w, Scenario: s, ServerMemory: true})
		out = append(out, st)
	}
	return out
}

// StepRamp reports whether s ramps in steps: at least two ramps with a target, each followed by a
// hold that measures it.
func (s *Scenario) StepRamp() bool {
	steps := 0
	for i, ph := range s.Phases {
		if ph.Kind == PhaseRamp && ph.Target > 0 && i+1 < len(s.Phases) && s.Phases[i+1].Kind == PhaseHold {
			steps++
		}
	}
	return steps >= 2
}

// Knee returns the index of the last step of a run of passing steps from the first one: the
// capacity the scenario's SLOs allow (-1 when the first step already failed or there are none).
func Knee(steps []Step) int {
	k := -1
	for i, st := range steps {
		if !st.Pass() {
			break
		}
		k = i
	}
	return k
}

// StepRampOf is the step ramp as result.json keeps it: every step with its figures and verdicts,
// and the knee (nil without steps).
func StepRampOf(steps []Step) *reports.StepRamp {
	if len(steps) == 0 {
		return nil
	}
	k := Knee(steps)
	out := &reports.StepRamp{Knee: k, KneeReached: k < len(steps)-1}
	for _, st := range steps {
		out.Steps = append(out.Steps, reports.RampStep{Phase: st.Phase, Start: st.Start, End: st.End, Connections: st.Connections,
			SentRate: st.SentRate, DeliveredRate: st.DeliveredRate, Pass: st.Pass(), SLOs: ReportVerdicts(st.Verdicts)})
	}
	return out
}

// WriteSteps writes one line per step of a step ramp (peak connections, message rates, verdict
// and the SLOs that broke) and the knee.
func WriteSteps(w io.Writer, sr *reports.StepRamp) error {
	if sr == nil || len(sr.Steps) == 0 {
		_, err := fmt.Fprintln(w, "knee: no steps (the scenario has no hold phase)")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tCONNECTIONS\tSENT/S\tDELIVERED/S\tRESULT\tBROKEN")
	for _, st := range sr.Steps {
		res, broken := "PASS", ""
		for _, v := range st.SLOs {
			if !v.Pass {
				res = "FAIL"
				if broken != "" {
					broken += ", "
				}
				broken += v.Name + " " + v.Measured()
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%s\t%s\n", st.Phase, st.Connections, st.SentRate, st.DeliveredRate, res, broken)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	k, steps := sr.Knee, sr.Steps
	var err error
	switch {
	case k < 0:
		_, err = fmt.Fprintf(w, "knee: below the first step (%s already broke an SLO)\n", steps[0].Phase)
	case !sr.KneeReached:
		_, err = fmt.Fprintf(w, "knee: not reached; the last step %s held with %d connections, %.0f messages/s sent, %.0f/s delivered\n",
			steps[k].Phase, steps[k].Connections, steps[k].SentRate, steps[k].DeliveredRate)
	default:
		_, err = fmt.Fprintf(w, "knee: %s, %d connections, %.0f messages/s sent, %.0f/s delivered (the next step broke an SLO)\n",
			steps[k].Phase, steps[k].Connections, steps[k].SentRate, steps[k].DeliveredRate)
	}
	return err
}

// window is r restricted to [from, to]: the client figures are the sum of the one-second
// intervals whose middle falls inside it, the telemetry the scrapes inside it, the events the ones inside
// it, the duration its length.
func window(r *reports.Result, from, to time.Time) *reports.Result {
	w := *r
	w.Started, w.Ended, w.Duration = from, to, to.Sub(from)
	w.Series = nil
	snap := stats.Snapshot{Start: from, At: to, Counters: map[string]int64{}, Hists: map[string]*stats.Hist{}, Gauges: map[string]int64{}}
	for _, iv := range r.Series {
		if mid := iv.End.Add(-500 * time.Millisecond); mid.Before(from) || mid.After(to) {
			continue
		}
		w.Series = append(w.Series, iv)
		for n, v := range iv.Counters {
			snap.Counters[n] += v
		}
		for n, p := range iv.Histograms {
			h, err := p.Hist()
			if err != nil {
				continue
			}
			if cur, ok := snap.Hists[n]; ok {
				cur.Merge(h)
			} else {
				snap.Hists[n] = h.Clone() // the decoded histogram is shared: merge into a copy
			}
		}
		snap.Gauges = iv.Gauges
	}
	w.Stats = reports.StatsFrom(snap)
	w.Telemetry = r.Telemetry
	w.Telemetry.Points = nil
	for _, p := range r.Telemetry.Points {
		if !p.At.Before(from) && !p.At.After(to) {
			w.Telemetry.Points = append(w.Telemetry.Points, p)
		}
	}
	w.Events = nil
	for _, ev := range r.Events {
		if !ev.At.Before(from) && !ev.At.After(to) {
			w.Events = append(w.Events, ev)
		}
	}
	return &w
}
