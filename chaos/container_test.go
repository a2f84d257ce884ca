package chaos

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeContainer records the faults it receives.
type fakeContainer struct {
	fakeNode
}

func (f *fakeContainer) Stop(context.Context) error  { return f.record("stop") }
func (f *fakeContainer) Start(context.Context) error { return f.record("start") }
func (f *fakeContainer) Disconnect(_ context.Context, network string) error {
	return f.record("disconnect " + network)
}
func (f *fakeContainer) Connect(_ context.Context, network string) error {
	return f.record("connect " + network)
}

var _ Container = (*fakeContainer)(nil)

func TestContainerTimelineValidate(t *testing.T) {
	net := map[string]string{ParamNetwork: "squall"}
	tests := []struct {
		name string
		tl   Timeline
		want []string // one line per problem; none when valid
	}{
		{"every container action", Timeline{
			{Action: ActionContainerStop, Target: "c"}, {Action: ActionContainerStart, Target: "c"},
			{Action: ActionContainerKill, Target: "c"}, {Action: ActionContainerRestart, Target: "c"},
			{Action: ActionContainerPause, Target: "c"}, {Action: ActionContainerResume, Target: "c"},
			{Action: ActionNetworkDisconnect, Target: "c", Params: net}, {Action: ActionNetworkConnect, Target: "c", Params: net},
		}, nil},
		{"missing container", Timeline{{Action: ActionContainerKill}},
			[]string{"timeline[0].target: missing (the container container_kill acts on)"}},
		{"missing network", Timeline{{Action: ActionNetworkDisconnect, Target: "c"}},
			[]string{"timeline[0].params.network: missing (the network network_disconnect acts on)"}},
		{"network on an action that takes none", Timeline{{Action: ActionContainerKill, Target: "c", Params: net}},
			[]string{"timeline[0].params.network: not a parameter of container_kill"}},
		{"a container the run does not have", Timeline{{Action: ActionContainerPause, Target: "redis"}},
			[]string{`timeline[0].target: unknown container "redis" (container faults act only on the run's own containers: have [c])`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Runner{Containers: map[string]Container{"c": &fakeContainer{}}}
			err := r.Validate(tt.tl)
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("Validate =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestRunnerContainerFaults runs every container action on schedule and checks that each reached
// its container and was recorded like any other step, failures included.
func TestRunnerContainerFaults(t *testing.T) {
	node0, redis := &fakeContainer{}, &fakeContainer{}
	redis.fail = errors.New("engine said no")
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := NewManualClock(start)
	net := map[string]string{ParamNetwork: "squall"}
	r := &Runner{Clock: clock, Containers: map[string]Container{"node-0": node0, "redis": redis}}
	tl := Timeline{
		{At: 1 * time.Second, Action: ActionContainerKill, Target: "node-0"},
		{At: 2 * time.Second, Action: ActionContainerStart, Target: "node-0"},
		{At: 3 * time.Second, Action: ActionContainerPause, Target: "node-0"},
		{At: 4 * time.Second, Action: ActionContainerResume, Target: "node-0"},
		{At: 5 * time.Second, Action: ActionNetworkDisconnect, Target: "node-0", Params: net},
		{At: 6 * time.Second, Action: ActionNetworkConnect, Target: "node-0", Params: net},
		{At: 7 * time.Second, Action: ActionContainerRestart, Target: "node-0"},
		{At: 8 * time.Second, Action: ActionContainerStop, Target: "redis"},
	}
	done := make(chan []Event, 1)
	go func() {
		evs, err := r.Run(t.Context(), start, tl)
		if err != nil {
			t.Error(err)
		}
		done <- evs
	}()
	for range tl {
		if err := clock.WaitForWaiters(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
	}
	evs := <-done
	if len(evs) != len(tl) {
		t.Fatalf("%d events for %d steps", len(evs), len(tl))
	}
	want := []string{"kill", "start", "pause", "resume", "disconnect squall", "connect squall", "restart"}
	if strings.Join(node0.calls, ",") != strings.Join(want, ",") {
		t.Errorf("node-0 got %v, want %v", node0.calls, want)
	}
	for i, ev := range evs {
		if ev.Action != tl[i].Action || ev.Target != tl[i].Target || ev.Offset != tl[i].At {
			t.Errorf("event %d = %s on %s at %v, want %s on %s at %v", i, ev.Action, ev.Target, ev.Offset, tl[i].Action, tl[i].Target, tl[i].At)
		}
	}
	if evs[4].Params[ParamNetwork] != "squall" {
		t.Errorf("the disconnect's event lost its network: %v", evs[4].Params)
	}
	if last := evs[len(evs)-1]; last.Error != "engine said no" {
		t.Errorf("the failed stop was recorded with error %q", last.Error)
	}
}
