package worker

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/squall-dev/squall/loadgen"
)

// TestAgentTargetsOnlyAllowedNetworks: an agent given networks refuses a job whose endpoints lie
// elsewhere, and one with no endpoint at all.
func TestAgentTargetsOnlyAllowedNetworks(t *testing.T) {
	allow := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
	tests := []struct {
		urls []string
		want string
	}{
		{[]string{"ws://10.1.2.3:8080/ws", "ws://10.1.9.9:8080/ws"}, ""},
		{[]string{"ws://10.1.2.3:8080/ws", "ws://127.0.0.1:8080/ws"}, "outside the networks this agent may load"},
		{nil, "no endpoint"},
	}
	for _, tt := range tests {
		var tgt loadgen.Target
		for _, u := range tt.urls {
			tgt.Endpoints = append(tgt.Endpoints, loadgen.Endpoint{URL: u})
		}
		err := checkTargets(t.Context(), tgt, allow)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%v: %v, want %q", tt.urls, err, tt.want)
		}
	}
}
