package scalebench

import (
	"strings"
	"testing"
	"time"

	"github.com/squall-dev/squall/reports"
)

func TestParseStatus(t *testing.T) {
	rss, hwm := ParseStatus([]byte("Name:\tloadgen\nVmPeak:\t  999 kB\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"))
	if rss != 1024*1024 || hwm != 2048*1024 {
		t.Errorf("rss %d hwm %d", rss, hwm)
	}
}

func TestParseStat(t *testing.T) {
	// The command name holds a space and a parenthesis: fields count from the last ')'.
	line := "4242 (a b) c) S 17 4242 17 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 9 0 123 0 0\n"
	ppid, ticks, err := ParseStat([]byte(line))
	if err != nil || ppid != 17 || ticks != 280 {
		t.Errorf("ppid %d ticks %d err %v", ppid, ticks, err)
	}
	if _, _, err := ParseStat([]byte("12 (x) S 1")); err == nil {
		t.Error("short stat accepted")
	}
}

func TestClassOf(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"/x/bin/loadgen", "__refserver-node", "--dev"}, ClassGateway},
		{[]string{"bin/refserver", "--dev"}, ClassGateway},
		{[]string{"/x/bin/loadgen", "agent", "--listen", "127.0.0.1:0"}, ClassGenerator},
		{[]string{"/x/bin/loadgen-worker", "agent", "--listen", "127.0.0.1:0"}, ClassGenerator},
		{[]string{"bin/loadgen", "run", "scenarios/scale-20k.yaml"}, ClassController},
		{[]string{"bin/bench-scale", leanServerCmd}, ClassLeanServer},
		{[]string{"bin/bench-scale", leanClientCmd, "ws://x", "1", "127.96.0.0/16"}, ClassLeanClient},
		{[]string{"bash"}, ""},
		{nil, ""},
	} {
		if got := ClassOf(tc.args); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestReplaceSection(t *testing.T) {
	doc := "# t\n\n<!-- bench-scale:next -->\n"
	doc = ReplaceSection(doc, "a", "one\n")
	doc = ReplaceSection(doc, "b", "two\n")
	doc = ReplaceSection(doc, "a", "ONE\n")
	want := "# t\n\n<!-- bench-scale:begin a -->\nONE\n<!-- bench-scale:end a -->\n\n" +
		"<!-- bench-scale:begin b -->\ntwo\n<!-- bench-scale:end b -->\n\n<!-- bench-scale:next -->\n"
	if doc != want {
		t.Errorf("got\n%s\nwant\n%s", doc, want)
	}
	if got := ReplaceSection("x", "k", "s\n"); !strings.HasSuffix(got, "<!-- bench-scale:end k -->\n") || !strings.HasPrefix(got, "x\n") {
		t.Errorf("without a marker: %q", got)
	}
}

func TestClassFigures(t *testing.T) {
	t0 := time.Unix(1000, 0)
	mk := func(sec int, rss int64, ticks uint64) Sample {
		return Sample{At: t0.Add(time.Duration(sec) * time.Second), Classes: map[string]ClassSample{
			ClassGateway: {Procs: 2, RSSBytes: rss, HWMBytes: rss + 10, CPUTicks: ticks}}}
	}
	ss := []Sample{mk(0, 999_999, 0), mk(1, 100_000, 100), mk(2, 300_000, 150), mk(3, 200_000, 300), mk(9, 999_999, 900)}
	f := classFigures(ss, ClassGateway, t0.Add(time.Second), t0.Add(3*time.Second), 100)
	if f.PeakRSS != 300_000 || f.RSSPerConn != 3000 || f.Procs != 2 {
		t.Errorf("peak %d per conn %v procs %d", f.PeakRSS, f.RSSPerConn, f.Procs)
	}
	// 200 ticks over 2 s = 1 core.
	if f.CoresHold != 1 {
		t.Errorf("cores %v", f.CoresHold)
	}
}

// TestCommonPhase: the hold is the span every worker held, not worker 0's.
func TestCommonPhase(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	hold := reports.Phase{Name: "hold", Start: at(40), End: at(340)}
	res := &reports.Result{Events: []reports.Event{
		{At: at(0), Kind: reports.EventPhase, Message: "ramp", Worker: 0},
		{At: at(0), Kind: reports.EventPhase, Message: "ramp", Worker: 1},
		{At: at(35), Kind: reports.EventPhase, Message: "hold", Worker: 1},
		{At: at(40), Kind: reports.EventPhase, Message: "hold", Worker: 0},
		{At: at(335), Kind: reports.EventPhase, Message: "ramp-down", Worker: 1},
		{At: at(340), Kind: reports.EventPhase, Message: "ramp-down", Worker: 0},
	}}
	from, to := commonPhase(res, &hold)
	if !from.Equal(at(40)) || !to.Equal(at(335)) {
		t.Fatalf("common hold %v..%v, want 40 s..335 s", from.Sub(t0), to.Sub(t0))
	}
}

// TestHoldReliability: the hold's verdict follows its own schedule lag against the plan's bound,
// whatever the whole run's was, and a run without a complete hold gets none.
func TestHoldReliability(t *testing.T) {
	for _, tc := range []struct {
		f    RunFigures
		want string
	}{
		{RunFigures{Window: "hold", LagP99: 41 * time.Millisecond, LagBound: 50 * time.Millisecond, Reliable: false}, "yes: schedule-lag p99 41.0 ms within the bound 50.0 ms"},
		{RunFigures{Window: "hold", LagP99: 63 * time.Millisecond, LagBound: 50 * time.Millisecond, Reliable: true}, "no: schedule-lag p99 63.0 ms above the bound 50.0 ms"},
		{RunFigures{Window: "whole run", LagP99: time.Millisecond, LagBound: 50 * time.Millisecond}, "no hold to judge (the run stopped before its hold ended)"},
	} {
		if got := holdReliability(tc.f); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.f, got, tc.want)
		}
	}
}
