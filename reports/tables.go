package reports

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
)

// Table is a table of the HTML report: a header row and rows of cells, all text.
type Table struct {
	ID      string
	Caption string
	Header  []string
	Rows    [][]string
}

func count(v int64) string { return strconv.FormatInt(v, 10) }

func pctText(h *stats.Hist, p float64) string {
	if h.Count() == 0 {
		return "-"
	}
	return FormatDuration(time.Duration(h.Percentile(p)))
}

func errorCount(counters map[string]int64) int64 {
	var n int64
	for k, v := range counters {
		if strings.HasPrefix(k, stats.PrefixError) {
			n += v
		}
	}
	return n
}

// cohortTable has one row per cohort, from the cohort's own counters and histograms.
func (r *Result) cohortTable() *Table {
	names := r.Stats.CohortNames()
	if len(names) == 0 {
		return nil
	}
	planned := map[string]int{}
	if p, ok := r.plan(); ok {
		for _, c := range p.Cohorts {
			planned[c.Name] = c.Count
		}
	}
	t := &Table{ID: "table-cohorts", Caption: "Per cohort: each group of clients with its own behaviour.",
		Header: []string{"cohort", "clients", "connects", "connect errors", "reconnects", "disconnects", "abnormal (1006)", "false disconnects",
			"errors", "sent", "received", "connect p99", "fanout p50", "fanout p99"}}
	for _, n := range names {
		s := r.Stats.Cohort(n)
		clients := "-"
		if c, ok := planned[n]; ok {
			clients = strconv.Itoa(c)
		}
		t.Rows = append(t.Rows, []string{n, clients, count(s.Counter(stats.CtrConnects)), count(s.Counter(stats.CtrConnectErrors)),
			count(s.Counter(stats.CtrReconnects)), count(s.Counter(stats.CtrDisconnects)), count(s.Counter(stats.CloseCodeCounter(1006))),
			count(s.Counter(loadgen.CtrFalseDisconnects)), count(errorCount(s.Counters)),
			count(s.Counter(stats.CtrMessagesSent)), count(s.Counter(stats.CtrMessagesReceived)),
			pctText(s.Hist(stats.HistUpgrade), 99), pctText(s.Hist(stats.HistFanout), 50), pctText(s.Hist(stats.HistFanout), 99)})
	}
	return t
}

// phaseTable has one row per phase, its figures summed over the one-second intervals that end
// inside it (latencies from their merged histograms).
func (r *Result) phaseTable() *Table {
	if len(r.Phases) == 0 {
		return nil
	}
	var kinds []string
	if p, ok := r.plan(); ok {
		for _, ph := range p.Phases {
			kinds = append(kinds, string(ph.Kind))
		}
	}
	t := &Table{ID: "table-phases", Caption: "Per phase: the one-second intervals ending inside each phase.",
		Header: []string{"phase", "kind", "start", "length", "peak connections", "connects", "reconnects", "disconnects", "errors", "sent", "received", "fanout p50", "fanout p99"}}
	for i, ph := range r.Phases {
		end := ph.End
		if end.IsZero() {
			end = r.Ended
		}
		kind := ph.Kind
		if kind == "" && i < len(kinds) {
			kind = kinds[i]
		}
		var peak int64
		counters := map[string]int64{}
		fanout := stats.NewHist()
		for _, iv := range r.Series {
			if !iv.End.After(ph.Start) || iv.End.After(end) { // the intervals ending in (start, end]
				continue
			}
			peak = max(peak, iv.Gauges[stats.GaugeConnections])
			for k, v := range iv.Counters {
				counters[k] += v
			}
			if h, ok := iv.Histograms[stats.HistFanout]; ok {
				if d, err := h.Hist(); err == nil {
					fanout.Merge(d)
				}
			}
		}
		start := "-"
		if !r.Started.IsZero() {
			start = FormatDuration(ph.Start.Sub(r.Started).Round(time.Millisecond))
		}
		t.Rows = append(t.Rows, []string{ph.Name, kind, start, FormatDuration(end.Sub(ph.Start).Round(time.Millisecond)), count(peak),
			count(counters[stats.CtrConnects]), count(counters[stats.CtrReconnects]), count(counters[stats.CtrDisconnects]),
			count(errorCount(counters)), count(counters[stats.CtrMessagesSent]), count(counters[stats.CtrMessagesReceived]),
			pctText(fanout, 50), pctText(fanout, 99)})
	}
	return t
}

// workerTable has one row per worker process or agent, from its own last snapshot and summary.
func (r *Result) workerTable() *Table {
	if len(r.Workers) == 0 {
		return nil
	}
	t := &Table{ID: "table-workers", Caption: "Per worker (or remote agent): its share of the clients and how its part went.",
		Header: []string{"worker", "address", "via", "pid", "clients", "status", "stop", "schedule lag p99", "connects", "errors", "fanout p99",
			"gaps", "acked undelivered", "ghosts", "note"}}
	for _, w := range r.Workers {
		row := []string{strconv.Itoa(w.Index), orDash(w.Addr), workerVia(w), "-", strconv.Itoa(w.Clients), w.Status, "-", "-", "-", "-", "-", "-", "-", "-", w.Error}
		if w.PID > 0 {
			row[3] = strconv.Itoa(w.PID)
		}
		if s := w.Stats; s != nil {
			row[8] = count(s.Counter(stats.CtrConnects))
			row[9] = count(errorCount(s.Counters))
			row[10] = pctText(s.Hist(stats.HistFanout), 99)
		}
		if s := w.Summary; s != nil {
			row[6] = orDash(s.StopReason)
			row[7] = FormatDuration(s.LagP99)
			row[11], row[12], row[13] = count(s.Delivery.Gaps), count(s.Delivery.AckedUndelivered), count(s.Delivery.Ghosts)
			if s.Unreliable {
				row[14] = strings.TrimPrefix(strings.TrimSpace(row[14]+"; unreliable: "+s.Reason), "; ")
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// workerVia says what ran a worker and how the controller talked to it ("agent, tls"); "-" when
// the result does not say (schema 1, or a result written before it was recorded).
func workerVia(w Worker) string {
	switch {
	case w.Kind != "" && w.Transport != "":
		return w.Kind + ", " + w.Transport
	case w.Kind != "":
		return w.Kind
	}
	return orDash(w.Transport)
}

// eventTable lists the phases and every event with its offset from the start.
func (r *Result) eventTable() *Table {
	t := &Table{ID: "table-events", Caption: "Phases and events, as marked on the timelines (events in red there, by their mark).",
		Header: []string{"at", "mark", "kind", "what", "detail"}}
	at := func(tm time.Time) string {
		if r.Started.IsZero() {
			return "-"
		}
		return FormatDuration(tm.Sub(r.Started).Round(time.Millisecond))
	}
	for _, ph := range r.Phases {
		t.Rows = append(t.Rows, []string{at(ph.Start), "", "phase", ph.Name, ""})
	}
	for i, ev := range r.eventsMarked() {
		detail := ""
		if f := ev.Fault; f != nil {
			var parts []string
			parts = append(parts, fmt.Sprintf("planned at %s, ran at %s, took %s", FormatDuration(f.At), FormatDuration(f.Offset), FormatDuration(f.Took)))
			for _, k := range sortedKeys(f.Params) {
				parts = append(parts, k+"="+f.Params[k])
			}
			if f.Error != "" {
				parts = append(parts, "FAILED: "+f.Error)
			}
			detail = strings.Join(parts, "; ")
		}
		if ev.Worker != 0 {
			detail = strings.TrimPrefix(detail+fmt.Sprintf("; worker %d", ev.Worker), "; ")
		}
		t.Rows = append(t.Rows, []string{at(ev.At), eventLabel(i), ev.Kind, ev.Message, detail})
	}
	if len(t.Rows) == 0 {
		return nil
	}
	sortRowsByOffset(t.Rows)
	return t
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sortRowsByOffset orders event rows by their offset (the first cell), phases first on a tie.
func sortRowsByOffset(rows [][]string) {
	parse := func(s string) time.Duration { d, _ := time.ParseDuration(s); return d }
	slices.SortStableFunc(rows, func(a, b []string) int { return cmp.Compare(parse(a[0]), parse(b[0])) })
}
