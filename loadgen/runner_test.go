package loadgen

import (
	"testing"
	"time"
)

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
