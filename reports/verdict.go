package reports

import (
	"fmt"
	"strings"
)

// Verdict words of one SLO.
const (
	ResultPass       = "PASS"
	ResultFail       = "FAIL"
	ResultFailNoData = "FAIL (no data)"
	ResultSkipNoData = "skip (no data)" // an optional SLO without data: it counts as held
)

// Result is the verdict word of the SLO: PASS, FAIL, "FAIL (no data)", or "skip (no data)".
func (v SLOVerdict) Result() string {
	switch {
	case v.NoData && v.Pass:
		return ResultSkipNoData
	case v.NoData:
		return ResultFailNoData
	case v.Pass:
		return ResultPass
	}
	return ResultFail
}

// Measured renders the observed value in the SLO's unit: "no data", "never" for a recovery that did
// not happen, else the value. A schema 1 verdict, whose unit is unknown, shows the text its detail
// kept ("observed 439ms").
func (v SLOVerdict) Measured() string {
	switch {
	case v.NoData:
		return "no data"
	case v.Unbounded && (v.Unit == UnitSeconds || v.Unit == ""):
		return "never"
	case v.Unbounded:
		return "unbounded"
	case v.Unit == "":
		for _, part := range strings.Split(v.Detail, ";") {
			if s, ok := strings.CutPrefix(strings.TrimSpace(part), "observed "); ok {
				return s
			}
		}
	}
	return FormatValue(v.Value, v.Unit)
}

// CohortName is the verdict's cohort, "all" for every client.
func (v SLOVerdict) CohortName() string {
	if v.Cohort == "" || v.Cohort == "all" {
		return "all"
	}
	return v.Cohort
}

// Outcome is the one line that says how the run went: whether it completed, whether every SLO
// held, and whether its numbers can be trusted.
type Outcome struct {
	// Pass is true when the run completed and every SLO held (a run without SLOs passes when it
	// completed: there was nothing to breach).
	Pass bool
	// Word is PASS, FAIL, "NOT GRADED" (no SLOs), INTERRUPTED or "HARNESS FAILED".
	Word string
	// Text says why, in one sentence.
	Text string
	// Held and Graded count the SLOs.
	Held, Graded int
}

// Outcome sums the result up.
func (r *Result) Outcome() Outcome {
	h := Outcome{Graded: len(r.SLOs)}
	for _, v := range r.SLOs {
		if v.Pass {
			h.Held++
		}
	}
	breached := h.Graded - h.Held
	slos := fmt.Sprintf("%d of %d SLOs held", h.Held, h.Graded)
	if breached > 0 {
		slos = fmt.Sprintf("%d of %d SLOs breached", breached, h.Graded)
	}
	switch {
	case r.StopReason == StopFailed || r.StopReason == StopAllLost:
		h.Word = "HARNESS FAILED"
		h.Text = "the harness failed; the figures are partial"
		if r.Error != "" {
			h.Text = "the harness failed: " + r.Error
		}
		if r.StopReason == StopAllLost {
			h.Text = "every worker was lost; the figures are what they reported before"
		}
	case r.StopReason == StopInterrupted:
		h.Word = "INTERRUPTED"
		h.Text = "the run was interrupted; the figures are partial"
		if h.Graded > 0 {
			h.Text += " (" + slos + ")"
		}
	case h.Graded == 0:
		h.Word, h.Pass = "NOT GRADED", true
		h.Text = "the run completed; it had no SLOs to grade"
	case breached > 0:
		h.Word, h.Text = ResultFail, slos
	default:
		h.Word, h.Pass, h.Text = ResultPass, true, slos
	}
	return h
}

// Clients is the number of simulated clients the workers started.
func (r *Result) Clients() int {
	n := 0
	for _, w := range r.Workers {
		n += w.Clients
	}
	return n
}
