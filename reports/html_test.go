package reports_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver/protocol"
	"github.com/squall-dev/squall/reports"
)

func renderHTML(t testing.TB, r *reports.Result, opts reports.RenderOptions) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteHTML(&b, opts); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var (
	tag     = regexp.MustCompile(`<[a-zA-Z][^>]*>`)
	urlAttr = regexp.MustCompile(`(?i)\s(?:src|href|xlink:href|action|poster|srcset|data)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)`)
	cssURL  = regexp.MustCompile(`(?i)url\(\s*([^)]*)\)`)
)

// checkSelfContained fails when the page could load anything: a URL other than a fragment in any
// src or href, a CSS url(), an @import, a script or a linked resource.
func checkSelfContained(t *testing.T, page string) {
	t.Helper()
	for _, tg := range tag.FindAllString(page, -1) {
		for _, m := range urlAttr.FindAllStringSubmatch(tg, -1) {
			if v := strings.Trim(m[1], `"'`); !strings.HasPrefix(v, "#") {
				t.Errorf("external reference %s", strings.TrimSpace(m[0]))
			}
		}
	}
	for _, m := range cssURL.FindAllStringSubmatch(page, -1) {
		if v := strings.Trim(m[1], ` "'`); !strings.HasPrefix(v, "#") {
			t.Errorf("CSS loads %s", m[0])
		}
	}
	for _, bad := range []string{"<script", "<link", "@import", "<iframe", "<object", "<embed"} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("the page contains %s", bad)
		}
	}
}

// wantCharts are the charts a result must have, from its own data: each timeline with data, a
// percentile plot per histogram with values, the reconnect-delay distribution when there were
// reconnects.
func wantCharts(r *reports.Result) []string {
	want := []string{"timeline-connections"}
	if r.Stats.Counter(stats.CtrConnects) > 0 {
		want = append(want, "timeline-connects")
	}
	for k, v := range r.Stats.Counters {
		if strings.HasPrefix(k, stats.PrefixCloseCode) && v > 0 {
			want = append(want, "timeline-disconnects")
			break
		}
	}
	if r.Stats.Count(stats.HistFanout) > 0 {
		want = append(want, "timeline-latency-fanout")
	}
	for _, n := range r.Stats.HistNames() {
		if !strings.HasPrefix(n, stats.CohortPrefix) && r.Stats.Count(n) > 0 {
			want = append(want, "percentiles-"+n)
		}
	}
	if r.Stats.Count(loadgen.HistReconnectDelay) > 0 {
		want = append(want, "reconnect-delay")
	}
	if r.StepRamp != nil {
		for j, v := range r.StepRamp.Steps[0].SLOs {
			for _, st := range r.StepRamp.Steps {
				if !st.SLOs[j].NoData && !st.SLOs[j].Unbounded {
					want = append(want, "knee-"+strings.ReplaceAll(v.Name, " ", "-"))
					break
				}
			}
		}
	}
	for _, p := range r.Telemetry.Points {
		if p.MemoryPerConn > 0 {
			want = append(want, "timeline-memory-per-connection")
			break
		}
	}
	for _, p := range r.Telemetry.Points {
		if p.Values[protocol.MetricGoGoroutines] > 0 {
			want = append(want, "timeline-goroutines")
			break
		}
	}
	return want
}

func TestHTMLStructure(t *testing.T) {
	for i, fx := range renderFixtures {
		t.Run(fx.name, func(t *testing.T) {
			r, opts := fixture(t, i)
			page := renderHTML(t, r, opts)
			checkSelfContained(t, page)
			if !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.Contains(page, `name="viewport"`) || !strings.Contains(page, "@media print") {
				t.Error("not a responsive, printable HTML5 page")
			}
			// The verdict comes first, then the SLO table, then the run.
			order := []string{`id="verdict"`, `id="slos"`, `id="run"`, `id="timelines"`, `id="percentiles"`, `id="tables"`, `id="events"`, `id="configuration"`}
			last := -1
			for _, id := range order {
				i := strings.Index(page, id)
				if i < last {
					t.Errorf("%s is missing or out of order", id)
				}
				last = i
			}
			for _, v := range r.SLOs {
				row := fmt.Sprintf(`<tr class="slo %s" data-slo="%s">`, map[bool]string{true: "pass", false: "fail"}[v.Pass], v.Name)
				if !strings.Contains(page, row) {
					t.Errorf("no row %s", row)
				}
			}
			for _, id := range wantCharts(r) {
				start := strings.Index(page, `<figure class="chart" id="`+id+`">`)
				if start < 0 {
					t.Errorf("chart %s missing", id)
					continue
				}
				fig := page[start:]
				fig = fig[:strings.Index(fig, "</figure>")]
				if !strings.Contains(fig, "<svg") || !strings.Contains(fig, "<path") {
					t.Errorf("chart %s has no drawing", id)
				}
			}
			for _, id := range []string{"table-workers", "table-phases", "key-figures", "environment"} {
				if !strings.Contains(page, `id="`+id+`"`) {
					t.Errorf("table %s missing", id)
				}
			}
			if r.Scenario != nil && r.Scenario.Source != "" && !strings.Contains(page, `id="scenario-source"`) {
				t.Error("the scenario source is missing")
			}
			if !r.Reliable && !strings.Contains(page, `id="unreliable"`) {
				t.Error("an unreliable run does not say so at the top")
			}
			if c := opts.Comparison; c != nil {
				for _, m := range c.Metrics {
					if !strings.Contains(page, `data-figure="`+m.Name+`"`) {
						t.Errorf("comparison row %s missing", m.Name)
					}
				}
				if !strings.Contains(page, `id="baseline-verdict"`) {
					t.Error("the comparison's verdict is missing from the top")
				}
				if len(r.SLOs) > 0 && !strings.Contains(page, "<th>vs baseline</th>") {
					t.Error("the SLO table has no baseline columns")
				}
			}
			if d := r.Diagnosis; d != nil {
				for _, f := range d.Findings {
					if !strings.Contains(page, `data-code="`+f.Code+`"`) || !strings.Contains(page, f.Evidence[0]) {
						t.Errorf("finding %s or its evidence missing", f.Code)
					}
				}
			}
		})
	}
}

// TestHTMLEscapes checks that text from the result is escaped, not interpreted.
func TestHTMLEscapes(t *testing.T) {
	r := readFixture(t, "testdata/result.golden.json")
	r.Name = `<img src="http://example.com/x.png">`
	r.Scenario.Source = "</pre><script>alert(1)</script>"
	r.SLOs[0].Name = `"><script>`
	page := renderHTML(t, r, options())
	checkSelfContained(t, page)
}

// distributedResult is a synthetic run of clients spread over workers, held for secs seconds with
// every per-second series filled (three cohorts, six latencies, close codes, gateway telemetry):
// what a large distributed run writes. The per-second histograms cycle through a few distinct
// ones, which costs the report's size nothing and the test most of its time.
func distributedResult(t testing.TB, clients, workers, secs int) *reports.Result {
	t.Helper()
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	cohorts := []string{"office", "remote", "mobile"}
	lat := []string{stats.HistUpgrade, stats.HistFanout, stats.HistFanoutServer, stats.HistPingRTT, stats.HistScheduleLag, stats.HistReconnect}
	res := &reports.Result{Schema: reports.SchemaVersion, Tool: "loadgen test", Name: "big", StopReason: reports.StopCompleted,
		Started: start, Ended: start.Add(time.Duration(secs) * time.Second), Duration: time.Duration(secs) * time.Second, Reliable: true,
		Target: reports.Target{Kind: "embedded", Nodes: 4}}
	const distinct = 8
	perSecond := make([]map[string]reports.Histogram, distinct)
	for i := range perSecond {
		perSecond[i] = map[string]reports.Histogram{}
		for _, h := range lat {
			for _, name := range append([]string{h}, cohortKeys(cohorts, h)...) {
				hist := stats.NewHist()
				for range 200 {
					hist.RecordValue(int64(rng.ExpFloat64() * float64(time.Duration(i+1)*time.Millisecond)))
				}
				perSecond[i][name] = reports.HistogramFrom(hist)
			}
		}
	}
	for s := 1; s <= secs; s++ {
		iv := reports.Interval{Second: s, Start: start.Add(time.Duration(s-1) * time.Second), End: start.Add(time.Duration(s) * time.Second),
			Counters: map[string]int64{}, Gauges: map[string]int64{stats.GaugeConnections: int64(clients)}, Histograms: perSecond[s%distinct]}
		for _, c := range cohorts {
			iv.Counters[stats.CohortKey(c, stats.CtrMessagesSent)] = 300
			iv.Counters[stats.CohortKey(c, stats.CtrConnects)] = int64(rng.IntN(50))
		}
		iv.Counters[stats.CtrMessagesSent] = 900
		iv.Counters[stats.CtrConnects] = int64(rng.IntN(150))
		for _, code := range []int{1000, 1001, 1006, 1008, 1013} {
			iv.Counters[stats.CloseCodeCounter(code)] = int64(rng.IntN(20))
		}
		res.Series = append(res.Series, iv)
	}
	var snaps []reports.Stats
	for w := range workers {
		rec := stats.NewRecorder(start)
		for _, h := range lat {
			for _, name := range append([]string{h}, cohortKeys(cohorts, h)...) {
				for range 1000 {
					rec.Record(name, time.Duration(rng.ExpFloat64()*float64(5*time.Millisecond)))
				}
			}
		}
		rec.Add(stats.CtrConnects, int64(clients/workers))
		rec.Add(stats.CloseCodeCounter(1006), 12)
		st := reports.StatsFrom(rec.Snapshot())
		snaps = append(snaps, st)
		res.Workers = append(res.Workers, reports.Worker{Index: w, Addr: fmt.Sprintf("127.0.0.1:%d", 9000+w), PID: 100 + w,
			Clients: clients / workers, Status: reports.WorkerOK, Stats: &st})
	}
	var err error
	if res.Stats, err = reports.MergeStats(snaps...); err != nil {
		t.Fatal(err)
	}
	res.Phases = []reports.Phase{{Name: "ramp", Start: start, End: start.Add(60 * time.Second)},
		{Name: "hold", Start: start.Add(60 * time.Second), End: start.Add(time.Duration(secs-30) * time.Second)},
		{Name: "ramp-down", Start: start.Add(time.Duration(secs-30) * time.Second), End: res.Ended}}
	res.Telemetry.Status = reports.TelemetryOK
	for s := 1; s <= secs; s++ {
		vals := map[string]float64{protocol.MetricConnectionsActive: float64(clients), protocol.MetricProcessResidentMemory: 4e9,
			protocol.MetricGoGoroutines: 2.1 * float64(clients), protocol.MetricShedTotal: float64(s)}
		for _, reason := range []string{"conn_limit", "origin", "overloaded", "unauthorized"} {
			vals[protocol.MetricConnRejectionsTotal+`{reason="`+reason+`"}`] = float64(s / 10)
		}
		res.Telemetry.Points = append(res.Telemetry.Points, reports.TelemetryPoint{Second: s, At: start.Add(time.Duration(s) * time.Second),
			Values: vals, MemoryPerConn: 4e9 / float64(clients), Nodes: 4})
	}
	return res
}

func cohortKeys(cohorts []string, name string) []string {
	out := make([]string, len(cohorts))
	for i, c := range cohorts {
		out[i] = stats.CohortKey(c, name)
	}
	return out
}

// TestHTMLSizeDistributed checks that the report of a 100 000-client run on six workers, ten
// minutes of full per-second series, stays under 5 MB (about 0.4 MB; an hour's is about 1.6 MB).
func TestHTMLSizeDistributed(t *testing.T) {
	if testing.Short() {
		t.Skip("renders a ten-minute distributed run")
	}
	r := distributedResult(t, 100_000, 6, 600)
	page := renderHTML(t, r, options())
	t.Logf("report.html of a 100 000-client, 6-worker, ten-minute run: %d bytes", len(page))
	if len(page) > 5<<20 {
		t.Errorf("report.html is %d bytes, want under 5 MB", len(page))
	}
	checkSelfContained(t, page)
}

// TestRenderConcurrently renders one shared result from two goroutines at once (run with -race):
// the renderings only read it.
func TestRenderConcurrently(t *testing.T) {
	r, opts := fixture(t, 0)
	pages := make([]string, 2)
	var wg sync.WaitGroup
	for i := range pages {
		wg.Go(func() {
			var b bytes.Buffer
			if err := r.WriteHTML(&b, opts); err != nil {
				t.Error(err)
			}
			pages[i] = b.String()
		})
	}
	wg.Wait()
	if pages[0] != pages[1] {
		t.Error("two renderings of one result differ")
	}
}

// BenchmarkWriteHTMLDistributed renders the report of a ten-minute 100 000-client run on six
// workers (the size test's result); report.html should take well under a second to render.
func BenchmarkWriteHTMLDistributed(b *testing.B) {
	r := distributedResult(b, 100_000, 6, 600)
	opts := options()
	var size int
	for b.Loop() {
		var buf bytes.Buffer
		if err := r.WriteHTML(&buf, opts); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.ReportMetric(float64(size), "bytes/report")
}
