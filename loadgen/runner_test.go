package loadgen

import (
	"context"
	"testing"
	"time"

	"github.com/squall-dev/squall/loadgen/stats"
)

// TestPacedStopsBehindSchedule: a paced phase that has fallen behind its schedule (every call is
// already late, as when each waits for a dial slot) still stops as soon as its context ends.
func TestPacedStopsBehindSchedule(t *testing.T) {
	r := &runner{env: &runEnv{rec: stats.NewRecorder(time.Now())}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err := r.paced(ctx, 1_000_000, 1e12, func(k int) {
		calls++
		if k == 9 {
			cancel()
		}
	})
	if err == nil || calls != 10 {
		t.Errorf("paced made %d calls and returned %v after its context ended at the 10th; want 10 and the context's error", calls, err)
	}
}

// TestStartStopsWhenSlotsAreTaken: a client waiting for a dial slot while every slot is held
// (attempts that hang, as on a machine dropping new connections) gives up when its phase ends.
func TestStartStopsWhenSlotsAreTaken(t *testing.T) {
	runCtx, runCancel := context.WithCancel(context.Background())
	defer runCancel()
	env := &runEnv{ctx: runCtx, dialSlots: make(chan struct{}, 1)}
	env.dialSlots <- struct{}{} // the one slot is taken
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if (&client{env: env}).start(ctx) {
		t.Fatal("start got a dial slot that was taken")
	}
}

// TestConnectingFilter: the clients a ramp's end waits for are those dialling or upgrading, open
// but not ready, or waiting for their first connect; the filter keeps their order and clears the
// slots it frees.
func TestConnectingFilter(t *testing.T) {
	dialling := &client{state: stConnecting}
	unready := &client{state: stOpen}
	ready := &client{state: stOpen, isReady: true}
	first := &client{state: stWaiting}
	retrying := &client{state: stWaiting, connectAt: time.Now()}
	all := []*client{ready, dialling, retrying, unready, first}
	got := connecting(all)
	want := []*client{dialling, unready, first}
	if len(got) != len(want) {
		t.Fatalf("connecting kept %d clients, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("client %d: got state %v, want state %v", i, got[i].state, want[i].state)
		}
	}
	for i, c := range all[len(got):] {
		if c != nil {
			t.Errorf("slot %d past the kept clients not cleared", len(got)+i)
		}
	}
	if got := connecting(connecting([]*client{ready})); len(got) != 0 {
		t.Fatalf("a ready client is connecting: %v", got)
	}
}
