package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/squall-dev/squall/refserver/protocol"
)

const sample = `# HELP ws_connections_active open connections
# TYPE ws_connections_active gauge
ws_connections_active %d
# TYPE ws_disconnects_total counter
ws_disconnects_total{code="1000"} 3
ws_disconnects_total{code="1006"} 2
# TYPE ws_orphaned_subscriptions gauge
ws_orphaned_subscriptions 0
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 4.194304e+07
# TYPE go_goroutines gauge
go_goroutines 17
# TYPE unrelated_metric counter
unrelated_metric 5
`

func TestParse(t *testing.T) {
	v, err := Parse(strings.NewReader(strings.Replace(sample, "%d", "1000", 1)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want float64
	}{
		{protocol.MetricConnectionsActive, 1000},
		{protocol.MetricDisconnectsTotal, 5},
		{protocol.MetricDisconnectsTotal + `{code="1006"}`, 2},
		{protocol.MetricProcessResidentMemory, 41943040},
		{protocol.MetricGoGoroutines, 17},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			if v[tc.key] != tc.want {
				t.Errorf("%s = %v, want %v", tc.key, v[tc.key], tc.want)
			}
		})
	}
	if _, ok := v["unrelated_metric"]; ok {
		t.Errorf("kept a metric that is not in Kept")
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	if _, err := Parse(strings.NewReader("this is { not metrics\n")); err == nil {
		t.Fatal("no error for garbage")
	}
}

func metricsServer(t *testing.T, conns *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != protocol.PathMetrics {
			http.NotFound(w, r)
			return
		}
		if got := r.Header.Get("Accept-Encoding"); got != "identity" {
			t.Errorf("scrape asks for encoding %q, want identity (compressing costs the gateway a compressor per scrape)", got)
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(strings.Replace(sample, "%d", itoa(conns.Load()), 1)))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestScrapeNodesSummed(t *testing.T) {
	var c1, c2 atomic.Int64
	c1.Store(1000)
	c2.Store(3000)
	a, b := metricsServer(t, &c1), metricsServer(t, &c2)
	s := New(Config{URLs: []string{a.URL + protocol.PathMetrics, b.URL + protocol.PathMetrics}}, nil)
	start := time.Now()
	s.ScrapeOnce(context.Background(), start, start.Add(time.Second))
	c1.Store(0)
	c2.Store(0)
	s.ScrapeOnce(context.Background(), start, start.Add(2*time.Second))
	r := s.Result()
	if r.Status != StatusOK || len(r.Points) != 2 {
		t.Fatalf("status %q points %d: %+v", r.Status, len(r.Points), r)
	}
	p := r.Points[0]
	if p.Nodes != 2 || p.Values[protocol.MetricConnectionsActive] != 4000 || p.Second != 1 {
		t.Errorf("point %+v", p)
	}
	if want := 2 * 41943040.0 / 4000; p.MemoryPerConn != want {
		t.Errorf("memory per conn %v, want %v", p.MemoryPerConn, want)
	}
	if r.Summary.PeakConnections != 4000 || r.Summary.MemoryPerConnAtPeak != p.MemoryPerConn {
		t.Errorf("summary %+v", r.Summary)
	}
	if r.Points[1].MemoryPerConn != 0 {
		t.Errorf("memory per conn without connections: %v", r.Points[1].MemoryPerConn)
	}
}

func TestNoMetrics(t *testing.T) {
	noMetrics := httptest.NewServer(http.NotFoundHandler())
	defer noMetrics.Close()
	var c atomic.Int64
	ok := metricsServer(t, &c)
	tests := []struct {
		name       string
		urls       []string
		wantStatus string
		wantReason string
	}{
		{"no endpoint configured", nil, StatusNone, "no metrics endpoint"},
		{"404", []string{noMetrics.URL + "/metrics"}, StatusNone, "404"},
		{"one of two answers", []string{ok.URL + "/metrics", noMetrics.URL + "/metrics"}, StatusPartial, "404"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Config{URLs: tc.urls, Interval: 20 * time.Millisecond}, nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); s.Run(ctx) }()
			deadline := time.Now().Add(5 * time.Second)
			for s.Result().Scrapes < 2 && len(tc.urls) > 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond) // polling for an event with a deadline
			}
			cancel()
			<-done
			r := s.Result()
			if r.Status != tc.wantStatus || !strings.Contains(r.Reason, tc.wantReason) {
				t.Errorf("status %q reason %q; want %q containing %q", r.Status, r.Reason, tc.wantStatus, tc.wantReason)
			}
		})
	}
}

func TestIncrease(t *testing.T) {
	pts := func(vs ...float64) []Point {
		out := make([]Point, len(vs))
		for i, v := range vs {
			out[i] = Point{Values: map[string]float64{"c": v}}
			if v < 0 { // absent from this scrape
				out[i].Values = map[string]float64{}
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		ps   []Point
		want float64
		ok   bool
	}{
		{"none", nil, 0, false},
		{"one point", pts(41), 0, true},
		{"earlier runs left out", pts(1000, 1000, 1010, 1042), 42, true},
		{"a node restarted", pts(100, 120, 5, 30), 20 + 30, true},
		{"a missed scrape", pts(10, -1, 15), 5, true},
		{"a series that appears during the run counts from zero", pts(-1, 3, 7), 7, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Increase(tc.ps, "c")
			if got != tc.want || ok != tc.ok {
				t.Errorf("Increase = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestBuildsOf(t *testing.T) {
	vals, err := Parse(strings.NewReader(`# TYPE ws_build_info gauge
ws_build_info{commit="0123abcd-dirty",go_version="go1.25.1",version="1.2.0"} 1
# TYPE ws_connections_active gauge
ws_connections_active 3
`))
	if err != nil {
		t.Fatal(err)
	}
	got := BuildsOf(vals)
	want := []Build{{Version: "1.2.0", Commit: "0123abcd-dirty", GoVersion: "go1.25.1"}}
	if !slices.Equal(got, want) {
		t.Errorf("BuildsOf = %+v, want %+v", got, want)
	}
	if BuildsOf(map[string]float64{"ws_connections_active": 3}) != nil {
		t.Error("a gateway without ws_build_info has a build")
	}
}

// The final scrape waits out a cleanup under way (orphaned memberships going down) but not a leak
// (a count that stays).
func TestFinalScrapesSettle(t *testing.T) {
	tests := []struct {
		name      string
		orphaned  []int // successive answers; the last repeats
		wantFinal float64
		wantAfter int // scrapes after the run ended
	}{
		{"none", []int{0}, 0, 1},
		{"cleanup under way", []int{40, 12, 3, 0}, 0, 4},
		{"leak", []int{40, 7}, 7, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				i := min(int(n.Add(1))-1, len(tc.orphaned)-1)
				body := strings.Replace(strings.Replace(sample, "%d", "0", 1),
					"ws_orphaned_subscriptions 0", fmt.Sprint("ws_orphaned_subscriptions ", tc.orphaned[i]), 1)
				_, _ = w.Write([]byte(body))
			}))
			defer srv.Close()
			s := New(Config{URLs: []string{srv.URL + "/metrics"}, Interval: 20 * time.Millisecond, Settle: 5 * time.Second}, nil)
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // the run is over at once: Run's first scrape fails, then the final ones
			s.Run(ctx)
			r := s.Result()
			if r.Summary.FinalOrphaned != tc.wantFinal || r.Scrapes-1 != tc.wantAfter {
				t.Errorf("final orphaned %v after %d final scrapes; want %v after %d",
					r.Summary.FinalOrphaned, r.Scrapes-1, tc.wantFinal, tc.wantAfter)
			}
		})
	}
}
