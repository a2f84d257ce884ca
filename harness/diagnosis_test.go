package harness

import (
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen"
	"github.com/squall-dev/squall/refserver/protocol"
	"github.com/squall-dev/squall/reports"
)

// findingCodes lists a diagnosis's findings as "class/code".
func findingCodes(d *reports.Diagnosis) []string {
	if d == nil {
		return nil
	}
	var out []string
	for _, f := range d.Findings {
		out = append(out, f.Class+"/"+f.Code)
	}
	return out
}

func hasFinding(d *reports.Diagnosis, class, code string) *reports.Finding {
	if d == nil {
		return nil
	}
	for i, f := range d.Findings {
		if f.Class == class && f.Code == code {
			return &d.Findings[i]
		}
	}
	return nil
}

// diagnosisChecks check what the diagnosis says of the flaw matrix's runs whose cause is known
// (matrix_test.go runs each in the subtest "diagnosis" of its cell, on the result the matrix graded,
// so that no scenario runs twice for it). The runs are the matrix's: time scale 0.1, the generator
// built without the race detector, as `loadgen run` runs them. To run these cells alone:
//
//	go test -run 'TestFlawMatrix/(proxy-idle-timeout|reconnect-storm)/' ./harness
var diagnosisChecks = map[matrixCell]func(t *testing.T, res *reports.Result){
	{"proxy-idle-timeout", "no-server-ping"}: checkDiagnosisBetween,
	{"proxy-idle-timeout", ""}:               checkNoIdleTimeoutWhenPinged,
	{"reconnect-storm", "leak-on-error"}:     checkDiagnosisServerSide,
}

// checkDiagnosisBetween: against the gateway that never pings, proxy-idle-timeout's Toxiproxy
// timeout toxic cuts every quiet tab at one age while the gateway counts no heartbeat timeout, and
// the diagnosis says "between" with that evidence.
func checkDiagnosisBetween(t *testing.T, res *reports.Result) {
	if res == nil {
		t.Fatal("the run left no result to diagnose")
	}
	f := hasFinding(res.Diagnosis, reports.ClassBetween, "proxy_idle_timeout")
	if f == nil {
		age := res.Stats.Hist(loadgen.HistAbnormalCloseAge)
		hb, _ := res.Telemetry.Increase(protocol.MetricHeartbeatTimeouts)
		t.Fatalf("no proxy idle timeout found: %v; abnormal closes %d at ages p10 %v p50 %v p90 %v; heartbeat timeouts %v; counters %v",
			findingCodes(res.Diagnosis), age.Count(), time.Duration(age.Percentile(10)), time.Duration(age.Percentile(50)),
			time.Duration(age.Percentile(90)), hb, res.Stats.Counters)
	}
	ev := strings.Join(f.Evidence, "\n")
	for _, want := range []string{"ended without a close frame (1006)", "one regular age", "at full speed that is an age of about ", "the gateway counted no heartbeat timeout"} {
		if !strings.Contains(ev, want) {
			t.Errorf("evidence lacks %q:\n%s", want, ev)
		}
	}
	t.Logf("%s: %s\n%s", f.Class, f.Title, ev)
}

// checkNoIdleTimeoutWhenPinged: against the clean gateway, whose pings keep the connections alive
// through the proxy, proxy-idle-timeout's diagnosis says nothing of an idle timeout.
func checkNoIdleTimeoutWhenPinged(t *testing.T, res *reports.Result) {
	if res == nil {
		t.Fatal("the run left no result to diagnose")
	}
	if res.Diagnosis == nil {
		t.Fatal("the clean run has no diagnosis")
	}
	for _, v := range res.SLOs {
		if !v.Pass {
			// On a machine so busy that the clean gateway's pings came later than the proxy's idle
			// timeout, the proxy did cut the tabs: the finding would be right (and the matrix fails
			// the clean run for its breach).
			t.Logf("the clean gateway's run breached %s (%s): its diagnosis is not checked", v.Name, v.Measured())
			return
		}
	}
	if f := hasFinding(res.Diagnosis, reports.ClassBetween, "proxy_idle_timeout"); f != nil {
		t.Errorf("the clean gateway's run is diagnosed with an idle timeout: %+v", f)
	}
}

// checkDiagnosisServerSide: against the gateway whose abnormal closes skip cleanup,
// reconnect-storm's diagnosis names the leaked subscriptions, server side, and does not take the
// proxy its timeline disables for an idle timeout.
func checkDiagnosisServerSide(t *testing.T, res *reports.Result) {
	if res == nil {
		t.Fatal("the run left no result to diagnose")
	}
	f := hasFinding(res.Diagnosis, reports.ClassServer, "orphaned_subscriptions")
	if f == nil {
		t.Fatalf("no leak found: %v", findingCodes(res.Diagnosis))
	}
	if !strings.Contains(f.Evidence[0], "still held after the run (ws_orphaned_subscriptions") {
		t.Errorf("evidence %q", f.Evidence)
	}
	if f := hasFinding(res.Diagnosis, reports.ClassBetween, "proxy_idle_timeout"); f != nil {
		t.Errorf("the proxy disabled by the timeline is taken for an idle timeout: %+v", f)
	}
	t.Logf("findings: %v", findingCodes(res.Diagnosis))
}
