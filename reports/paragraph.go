package reports

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
)

// plan decodes the plan the run kept (its shape is the load generator's); false when it has none
// or it does not decode (a plan of another version).
func (r *Result) plan() (loadgen.Plan, bool) {
	var p loadgen.Plan
	if len(r.Plan) == 0 || json.Unmarshal(r.Plan, &p) != nil {
		return loadgen.Plan{}, false
	}
	return p, true
}

// Paragraph describes the run in one paragraph: scenario, target, flaws, clients, duration, how it
// ended and the generator's health.
func (r *Result) Paragraph(g Glossary) string {
	var b strings.Builder
	if s := r.Scenario; s != nil {
		fmt.Fprintf(&b, "Scenario %s", s.Name)
		if s.File != "" {
			fmt.Fprintf(&b, " (%s", s.File)
			if s.TimeScale != 0 && s.TimeScale != 1 {
				fmt.Fprintf(&b, ", time scale %g", s.TimeScale)
			}
			b.WriteString(")")
		}
	} else {
		fmt.Fprintf(&b, "The built-in plan %s", nameOf(r))
	}
	fmt.Fprintf(&b, " ran %d clients", r.Clients())
	if p, ok := r.plan(); ok && len(p.Cohorts) > 1 {
		parts := make([]string, len(p.Cohorts))
		for i, c := range p.Cohorts {
			parts[i] = fmt.Sprintf("%s %d", c.Name, c.Count)
		}
		fmt.Fprintf(&b, " in %d cohorts (%s)", len(p.Cohorts), strings.Join(parts, ", "))
	}
	b.WriteString(workersText(r.Workers))
	fmt.Fprintf(&b, " against %s", targetText(r.Target))
	if r.Target.Kind == "embedded" {
		var flaws []string
		if r.Scenario != nil {
			flaws = r.Scenario.Flaws
		}
		if len(flaws) == 0 {
			b.WriteString(" with no flaws switched on")
		} else {
			descs := make([]string, len(flaws))
			for i, f := range flaws {
				descs[i] = f
				if d := g.Flaws[f]; d != "" {
					descs[i] += " (" + d + ")"
				}
			}
			fmt.Fprintf(&b, " with the flaws %s", strings.Join(descs, "; "))
		}
	}
	fmt.Fprintf(&b, " for %s", FormatDuration(r.Duration.Round(time.Millisecond)))
	if !r.Started.IsZero() {
		fmt.Fprintf(&b, ", from %s", r.Started.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	fmt.Fprintf(&b, "; it %s.", stopText(r))
	faults := 0
	for _, ev := range r.Events {
		if ev.Kind == EventFault {
			faults++
		}
	}
	if len(r.Phases) > 0 || faults > 0 {
		names := make([]string, len(r.Phases))
		for i, ph := range r.Phases {
			names[i] = ph.Name
		}
		fmt.Fprintf(&b, " Phases: %s", strings.Join(names, ", "))
		if faults > 0 {
			fmt.Fprintf(&b, "; %d fault step(s) ran", faults)
		}
		b.WriteString(".")
	}
	lag := r.Stats.Hist(stats.HistScheduleLag)
	b.WriteString(" Generator health: ")
	if lag.Count() > 0 {
		fmt.Fprintf(&b, "schedule-lag p99 %s", FormatDuration(time.Duration(lag.Percentile(99))))
		if p, ok := r.plan(); ok {
			fmt.Fprintf(&b, " (bound %s)", FormatDuration(p.LagBound()))
		}
		b.WriteString("; ")
	}
	if r.Reliable {
		b.WriteString("reliable.")
	} else {
		fmt.Fprintf(&b, "UNRELIABLE: %s.", r.UnreliableReason)
	}
	return b.String()
}

func targetText(t Target) string {
	var s string
	switch t.Kind {
	case "embedded":
		s = "the embedded reference gateway"
		if t.Nodes > 0 {
			s += fmt.Sprintf(" (%d node", t.Nodes)
			if t.Nodes > 1 {
				s += "s"
			}
			s += ")"
		}
	case "":
		s = "an unnamed target"
	default:
		s = t.Kind + " target"
		if len(t.URLs) > 0 {
			s += " " + strings.Join(t.URLs, ", ")
		}
	}
	return s
}

func stopText(r *Result) string {
	switch r.StopReason {
	case StopCompleted:
		return "completed"
	case StopInterrupted:
		return "was interrupted (the figures are partial)"
	case StopAllLost:
		return "lost every worker"
	case StopFailed:
		if r.Error != "" {
			return "failed: " + r.Error
		}
		return "failed"
	case "":
		return "ended for no recorded reason"
	}
	return "ended: " + r.StopReason
}

// workersText says where the clients ran: " on 3 remote agents", " in one worker process", ...
func workersText(ws []Worker) string {
	kinds := map[string]int{}
	for _, w := range ws {
		kinds[w.Kind]++
	}
	n := len(ws)
	switch {
	case n == 0:
		return ""
	case kinds[WorkerAgent] == n:
		if n == 1 {
			return " on one agent"
		}
		return fmt.Sprintf(" on %d agents", n)
	case kinds[WorkerSpawned] == n && n > 1:
		return fmt.Sprintf(" on %d local worker processes", n)
	case n == 1:
		return " in one worker process"
	}
	return fmt.Sprintf(" on %d workers", n)
}
