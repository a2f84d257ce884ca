package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/internal/gwtest"
	"github.com/squall-dev/squall/internal/tlstest"
	"github.com/squall-dev/squall/loadgen/stats"
	"github.com/squall-dev/squall/refserver"
	"github.com/squall-dev/squall/reports"
	"github.com/squall-dev/squall/scenarios"
)

// wssScenario is a short scenario against the gateway at url, with the target settings extra
// (YAML lines indented under target:).
func wssScenario(url, extra string) string {
	return fmt.Sprintf(`name: wss-smoke
seed: 1
target:
  url: %s
%s
cohorts:
  - name: users
    count: 20
    behaviour:
      rooms: {per_client: 1, count: 2}
      send_interval: 200ms
      heartbeat: 5s
      exit: close
phases:
  - {kind: ramp, rate: 200}
  - {kind: hold, duration: 2s}
  - {kind: ramp-down, rate: 200}
slos:
  - {metric: ordering_violations, agg: count, bound: "== 0"}
  - {metric: unrecovered_gaps, agg: count, bound: "== 0"}
  - {metric: lost_acked_messages, agg: count, bound: "== 0"}
`, url, extra)
}

// runScenarioText writes text as a scenario file in a temporary directory (so that relative file
// names resolve there), loads it and runs it.
func runScenarioText(t *testing.T, text string) (*reports.Result, error) {
	t.Helper()
	return runScenarioTextOpts(t, text, Options{})
}

// runScenarioTextOpts is runScenarioText with options.
func runScenarioTextOpts(t *testing.T, text string, o Options) (*reports.Result, error) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := scenarios.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Run(ctx, Spec{Scenario: s, File: file}, o)
}

// TestWSSSmoke runs a scenario over wss:// against the reference gateway serving TLS with a
// certificate of a test CA, trusted through target.tls.ca_file.
func TestWSSSmoke(t *testing.T) {
	certs := tlstest.Make(t)
	gw := gwtest.Start(t, refserver.Config{TLSCert: certs.ServerCert, TLSKey: certs.ServerKey})
	if !strings.HasPrefix(gw.URL(), "wss://") {
		t.Fatalf("gateway URL %s is not wss://", gw.URL())
	}
	var resolved string
	res, err := runScenarioTextOpts(t, wssScenario(gw.URL(), "  tls: {ca_file: "+certs.CA+"}"), Options{OnStart: func(st Start) { resolved = st.Resolved }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("resolved target: %s", resolved)
	for _, w := range []string{gw.URL(), "protocol=squall", "auth=jwt/HS256(dev secret) in=query", "tls=ca:" + certs.CA} {
		if !strings.Contains(resolved, w) {
			t.Errorf("resolved target %q does not say %q", resolved, w)
		}
	}
	st := res.Stats
	t.Logf("interop refserver over wss: fan-out p99 %v; messages sent %d, delivered %d (receipts), gaps %d; order violations %d; connect errors %d",
		st.Percentile(stats.HistFanout, 99), st.Counter(stats.CtrMessagesSent), st.Counter(stats.CtrMessagesReceived), st.Counter(stats.CtrGaps),
		st.Counter(stats.CtrOrderViolations), st.Counter(stats.CtrConnectErrors))
	if n := st.Counter(stats.CtrOrderViolations); n != 0 {
		t.Errorf("%d order violations over wss", n)
	}
	if n := st.Counter(stats.CtrConnects); n < 20 {
		t.Errorf("%d connections over wss, want 20", n)
	}
	if st.Count(stats.HistFanout) == 0 {
		t.Error("no broadcast delivered over wss")
	}
	if n := st.Counter(stats.CtrConnectErrors); n != 0 {
		t.Errorf("%d connect errors", n)
	}
	for _, v := range res.SLOs {
		if !v.Pass {
			t.Errorf("SLO %s %s failed: %v", v.Metric, v.Bound, v.Value)
		}
	}
}

// TestWSSRefused checks that a certificate the client cannot accept fails the run before it
// starts, with an error naming the setting to check.
func TestWSSRefused(t *testing.T) {
	certs := tlstest.Make(t)
	gw := gwtest.Start(t, refserver.Config{TLSCert: certs.ServerCert, TLSKey: certs.ServerKey})
	tests := []struct {
		name  string
		extra string
		want  []string
	}{
		{"wrong CA", "  tls: {ca_file: " + tlstest.OtherCA(t) + "}", []string{"certificate", "target.tls.ca_file", "--tls-ca"}},
		{"system roots", "", []string{"certificate", "target.tls.ca_file", "--tls-ca"}},
		{"wrong server name", "  tls: {ca_file: " + certs.CA + ", server_name: gateway.example.com}", []string{"certificate", "target.tls.server_name", "--tls-server-name"}},
		{"plain ws to TLS", "", []string{"refused the WebSocket upgrade"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := gw.URL()
			if tt.name == "plain ws to TLS" {
				url = "ws://" + strings.TrimPrefix(url, "wss://")
			}
			start := time.Now()
			_, err := runScenarioText(t, wssScenario(url, tt.extra))
			if err == nil {
				t.Fatal("the run started")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("the refusal took %v", d)
			}
		})
	}
}
