package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func lagToxic(name string) Toxic {
	return Toxic{Name: name, Type: Latency, Attributes: map[string]int64{"latency": 100, "jitter": 10}}
}

// TestTimelineValidate checks every validation message against
// testdata/timeline_errors.golden (rewrite with -update).
func TestTimelineValidate(t *testing.T) {
	custom := map[Action]Handler{"set_behaviour": {Params: []string{"cohort", "behaviour"}}}
	tests := []struct {
		name string
		tl   Timeline
	}{
		{"valid", Timeline{
			{At: 0, Action: ActionAddToxic, Target: "p", Toxic: lagToxic("lag")},
			{At: 10 * time.Second, Action: ActionRemoveToxic, Target: "p", Toxic: Toxic{Name: "lag"}},
			{At: 5 * time.Second, Action: ActionDisableProxy, Target: "p"},
			{At: 6 * time.Second, Action: ActionEnableProxy, Target: "p"},
			{At: 7 * time.Second, Action: ActionKill, Target: "node-1"},
			{At: 8 * time.Second, Action: ActionRestart, Target: "node-1"},
			{At: 9 * time.Second, Action: ActionPause, Target: "node-1"},
			{At: 9 * time.Second, Action: ActionResume, Target: "node-1"},
			{At: 9 * time.Second, Action: ActionDrain, Target: "node-1"},
			{At: 1 * time.Second, Action: "set_behaviour", Params: map[string]string{"cohort": "a", "behaviour": "vanish"}},
		}},
		{"negative offset", Timeline{{At: -time.Second, Action: ActionKill, Target: "n"}}},
		{"missing action", Timeline{{At: time.Second, Target: "n"}}},
		{"unknown action", Timeline{{Action: "explode", Target: "n"}}},
		{"missing target", Timeline{{Action: ActionDisableProxy}, {Action: ActionPause}}},
		{"invalid toxic", Timeline{{Action: ActionAddToxic, Target: "p", Toxic: Toxic{Type: Latency, Stream: "sideways",
			Attributes: map[string]int64{"rate": 1}}}}},
		{"remove without name", Timeline{{Action: ActionRemoveToxic, Target: "p", Toxic: Toxic{Type: Latency}}}},
		{"parameters an action does not take", Timeline{{Action: ActionKill, Target: "n",
			Toxic: Toxic{Name: "x"}, Params: map[string]string{"signal": "HUP"}}}},
		{"custom action missing params", Timeline{{Action: "set_behaviour", Params: map[string]string{"cohort": "a"}}}},
		{"toxic added twice and removed when absent", Timeline{
			{At: 2 * time.Second, Action: ActionAddToxic, Target: "p", Toxic: lagToxic("lag")},
			{At: 1 * time.Second, Action: ActionRemoveToxic, Target: "p", Toxic: Toxic{Name: "lag"}},
			{At: 3 * time.Second, Action: ActionAddToxic, Target: "p", Toxic: lagToxic("lag")},
			{At: 3 * time.Second, Action: ActionAddToxic, Target: "q", Toxic: lagToxic("lag")},
		}},
		{"several problems in several steps", Timeline{
			{At: -time.Millisecond, Action: ActionAddToxic, Toxic: Toxic{Name: "cap", Type: LimitData}},
			{At: time.Second, Action: ActionDrain, Target: "n"},
			{At: time.Second, Action: "reboot"},
		}},
	}
	var b strings.Builder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.tl.Validate(custom)
			fmt.Fprintf(&b, "== %s\n", tt.name)
			if err == nil {
				b.WriteString("ok\n")
				if tt.name != "valid" {
					t.Errorf("no error")
				}
				return
			}
			var te *TimelineError
			if !errors.As(err, &te) {
				t.Fatalf("error %T is not a *TimelineError", err)
			}
			if tt.name == "valid" {
				t.Errorf("unexpected error: %v", err)
			}
			fmt.Fprintf(&b, "%v\n", err)
		})
	}
	golden := filepath.Join("testdata", "timeline_errors.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("validation messages differ from %s (run with -update if intended):\n%s", golden, got)
	}
}

// fakeNode records the faults it receives.
type fakeNode struct {
	mu    sync.Mutex
	calls []string
	fail  error
}

func (f *fakeNode) record(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	return f.fail
}
func (f *fakeNode) Kill(context.Context) error    { return f.record("kill") }
func (f *fakeNode) Restart(context.Context) error { return f.record("restart") }
func (f *fakeNode) Pause(context.Context) error   { return f.record("pause") }
func (f *fakeNode) Resume(context.Context) error  { return f.record("resume") }
func (f *fakeNode) Drain(context.Context) error   { return f.record("drain") }

func TestRunnerValidatesTargets(t *testing.T) {
	r := &Runner{Nodes: map[string]Node{"node-1": &fakeNode{}}}
	_, err := r.Run(t.Context(), time.Time{}, Timeline{
		{Action: ActionAddToxic, Target: "p", Toxic: lagToxic("lag")},
		{Action: ActionKill, Target: "node-2"},
	})
	want := "timeline[0].action: add_toxic needs a proxy, and none is configured\n" +
		"timeline[1].target: unknown node \"node-2\" (have [node-1])"
	if err == nil || err.Error() != want {
		t.Fatalf("Run error =\n%v\nwant\n%s", err, want)
	}
}

func TestRunnerRunsOnSchedule(t *testing.T) {
	f := newFixture(t, impls[0])
	node := &fakeNode{}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := NewManualClock(start)
	var customRan []string
	events := make(chan Event, 16)
	r := &Runner{
		Proxies: f.p,
		Nodes:   map[string]Node{"node-1": node},
		Handlers: map[Action]Handler{"set_behaviour": {Params: []string{"cohort"},
			Run: func(_ context.Context, s Step) error { customRan = append(customRan, s.Params["cohort"]); return nil }}},
		Clock:   clock,
		OnEvent: func(e Event) { events <- e },
	}
	tl := Timeline{
		{At: 20 * time.Second, Action: ActionRemoveToxic, Target: "p", Toxic: Toxic{Name: "lag"}},
		{At: 10 * time.Second, Action: ActionAddToxic, Target: "p", Toxic: lagToxic("lag")},
		{At: 0, Action: ActionPause, Target: "node-1"},
		{At: 10 * time.Second, Action: ActionDisableProxy, Target: "missing-proxy"},
		{At: 30 * time.Second, Action: "set_behaviour", Params: map[string]string{"cohort": "a"}},
	}
	type result struct {
		events []Event
		err    error
	}
	done := make(chan result, 1)
	go func() { ev, err := r.Run(t.Context(), start, tl); done <- result{ev, err} }()

	next := func() Event {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5 s")
			return Event{}
		}
	}
	ctx := t.Context()
	// The step at 0 runs without the clock moving.
	if e := next(); e.Index != 2 || e.Offset != 0 || e.Error != "" {
		t.Fatalf("first event %+v", e)
	}
	for _, step := range []time.Duration{10 * time.Second, 10 * time.Second, 10 * time.Second} {
		if err := clock.WaitForWaiters(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(step)
		e := next()
		if e.Offset != e.At {
			t.Errorf("event %d ran at %v, planned %v", e.Index, e.Offset, e.At)
		}
		if e.At == 10*time.Second { // two steps at 10 s: the second needs no wait
			toxics, err := f.p.Toxics(ctx, "p")
			if err != nil || len(toxics) != 1 {
				t.Errorf("toxics after add_toxic = %v, %v", toxics, err)
			}
			if e2 := next(); e2.Index != 3 || !strings.Contains(e2.Error, "proxy not found") {
				t.Errorf("disable of a missing proxy: event %+v", e2)
			}
		}
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	gotOrder := []int{}
	for _, e := range res.events {
		gotOrder = append(gotOrder, e.Index)
	}
	if want := []int{2, 1, 3, 0, 4}; !reflect.DeepEqual(gotOrder, want) {
		t.Errorf("execution order %v, want %v", gotOrder, want)
	}
	if toxics, _ := f.p.Toxics(ctx, "p"); len(toxics) != 0 {
		t.Errorf("toxics left: %v", toxics)
	}
	if !reflect.DeepEqual(node.calls, []string{"pause"}) || !reflect.DeepEqual(customRan, []string{"a"}) {
		t.Errorf("node calls %v, custom %v", node.calls, customRan)
	}
	add := res.events[1]
	wantParams := map[string]string{"toxic": "lag", "type": "latency", "stream": "downstream",
		"toxicity": "1", "latency": "100", "jitter": "10"}
	if !reflect.DeepEqual(add.Params, wantParams) || !add.Time.Equal(start.Add(10*time.Second)) {
		t.Errorf("add_toxic event %+v", add)
	}
}

func TestRunnerStopsWithContext(t *testing.T) {
	clock := NewManualClock(time.Unix(0, 0))
	node := &fakeNode{}
	r := &Runner{Nodes: map[string]Node{"n": node}, Clock: clock}
	ctx, cancel := context.WithCancelCause(t.Context())
	done := make(chan error, 1)
	var got []Event
	go func() {
		var err error
		got, err = r.Run(ctx, time.Time{}, Timeline{{Action: ActionPause, Target: "n"}, {At: time.Hour, Action: ActionResume, Target: "n"}})
		done <- err
	}()
	if err := clock.WaitForWaiters(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("scenario ended")
	cancel(stop)
	select {
	case err := <-done:
		if !errors.Is(err, stop) {
			t.Fatalf("Run = %v, want the cancel cause", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run ignored cancellation")
	}
	if len(got) != 1 || got[0].Action != ActionPause {
		t.Errorf("events %+v, want only the pause", got)
	}
}

func TestEventJSONRoundTrip(t *testing.T) {
	e := Event{Index: 3, At: 1500 * time.Millisecond, Offset: 1501 * time.Millisecond,
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Took: 2 * time.Millisecond,
		Action: ActionKill, Target: "node-1", Error: "chaos: node node-1: kill: node not running"}
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"index":3,"at_seconds":1.5,"offset_seconds":1.501,"time":"2026-01-02T03:04:05Z","took_seconds":0.002,` +
		`"action":"kill","target":"node-1","error":"chaos: node node-1: kill: node not running"}`
	if string(data) != want {
		t.Errorf("JSON\n%s\nwant\n%s", data, want)
	}
	var back Event
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, e) {
		t.Errorf("round trip %+v, want %+v", back, e)
	}
}

func TestRunnerStepTimeout(t *testing.T) {
	r := &Runner{
		StepTimeout: 20 * time.Millisecond,
		Handlers: map[Action]Handler{"hang": {Run: func(ctx context.Context, _ Step) error {
			<-ctx.Done()
			return ctx.Err()
		}}},
	}
	events, err := r.Run(t.Context(), time.Time{}, Timeline{{Action: "hang"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Error != context.DeadlineExceeded.Error() {
		t.Fatalf("events %+v, want one with a deadline error", events)
	}
}

// FuzzEventJSON checks that decoding never panics and that whatever decodes
// re-encodes to something that decodes to the same event.
func FuzzEventJSON(f *testing.F) {
	f.Add([]byte(`{"index":3,"at_seconds":1.5,"offset_seconds":1.501,"time":"2026-01-02T03:04:05Z","took_seconds":0.002,"action":"kill","target":"node-1"}`))
	f.Add([]byte(`{"index":0,"action":"add_toxic","params":{"toxic":"lag","latency":"100"},"error":"x"}`))
	f.Add([]byte(`{"at_seconds":-1e300}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var e Event
		if err := json.Unmarshal(data, &e); err != nil {
			return
		}
		out, err := json.Marshal(e)
		if err != nil {
			return // e.g. a time outside what RFC 3339 can write
		}
		var back Event
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		again, _ := json.Marshal(back)
		if string(again) != string(out) {
			t.Fatalf("unstable encoding:\n%s\n%s", out, again)
		}
	})
}
