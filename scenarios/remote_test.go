package scenarios

import (
	"fmt"
	"strings"
	"testing"
)

// TestRemoteTargetValidates loads a scenario aimed at a gateway on another host over wss:// (it is
// validated, never run) and checks what the load generator would get from it.
func TestRemoteTargetValidates(t *testing.T) {
	s, err := Load("testdata/remote/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lt, err := s.LoadgenTarget()
	if err != nil {
		t.Fatal(err)
	}
	if err := lt.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := lt.Endpoints[0].URL; got != "wss://gateway.example.com:443/realtime" {
		t.Errorf("endpoint %s", got)
	}
	if lt.Auth.TokenFile != "testdata/remote/tokens.txt" {
		t.Errorf("token file %q not taken from the scenario's directory", lt.Auth.TokenFile)
	}
	if lt.Conn.Headers["Cookie"] != "session={{.User}}" || lt.Conn.Origin != "https://app.example.com" || lt.Conn.TLS.ServerName != "gateway.example.com" {
		t.Errorf("connection settings %+v", lt.Conn)
	}
	d := lt.Describe()
	for _, w := range []string{"wss://gateway.example.com:443/realtime", "protocol=squall", "token_file", "in=header", "server_name:gateway.example.com", "headers=Cookie"} {
		if !strings.Contains(d, w) {
			t.Errorf("Describe() = %q lacks %q", d, w)
		}
	}
}

// TestTargetSettingsRefused checks that URL-target settings on the embedded gateway, and bad
// settings on a URL target, are reported with their field.
func TestTargetSettingsRefused(t *testing.T) {
	const tail = "\ncohorts:\n  - {name: users, count: 1}\nphases:\n  - {kind: ramp, rate: 10}\n  - {kind: hold, duration: 1s}\n"
	tests := []struct {
		name, target, want string
	}{
		{"tls on embedded", "target:\n  tls: {insecure_skip_verify: true}", "target.tls: applies to a url target only"},
		{"generic on embedded", "target:\n  protocol: {name: generic}", "target.protocol: applies to a url target only"},
		{"unknown protocol", "target:\n  url: ws://h:1/x\n  protocol: {name: mqtt}", `target.protocol: protocol "mqtt": unknown`},
		{"bad alg", "target:\n  url: ws://h:1/x\n  auth: {alg: PS512}", `target.auth: auth alg "PS512"`},
		{"missing CA", "target:\n  url: wss://h:1/x\n  tls: {ca_file: nowhere.pem}", "target.tls: tls ca_file"},
		{"bad header", "target:\n  url: ws://h:1/x\n  headers: {Upgrade: x}", "target.headers: target: header Upgrade is set by the WebSocket handshake"},
		{"http scheme", "target:\n  url: http://h:1/x", `target.url: URL scheme "http"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte("name: t\n"+tt.target+tail))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCapabilitiesRefused checks that validation refuses an SLO whose metric needs what the
// target's profile cannot observe, naming the metric, the capability and the profile.
func TestCapabilitiesRefused(t *testing.T) {
	const base = `name: caps
target:
  url: ws://gateway.example.com:8080/socket
  protocol:
    name: %s
    %s
cohorts:
  - {name: users, count: 2}
phases:
  - {kind: ramp, rate: 10}
  - {kind: hold, duration: 1s}
slos:
  - {metric: %s, agg: %s, bound: "== 0"}
`
	generic := `generic: {publish: '{{.Payload}}', batch: newline}`
	tests := []struct {
		name, proto, settings, metric, agg, want string
	}{
		{"presence on generic", "generic", generic, "ghost_presence_duration", "max", "ghost_presence_duration needs presence, which the generic profile cannot observe (target.protocol"},
		{"acks on generic without ack matcher", "generic", generic, "lost_acked_messages", "count", "lost_acked_messages needs acks, which the generic profile"},
		{"presence on centrifugo", "centrifugo", "", "presence_convergence", "p99", "presence_convergence needs presence, which the centrifugo profile"},
		{"heartbeat on centrifugo", "centrifugo", "", "false_disconnects", "count", "false_disconnects needs server_heartbeat"},
		{"accounting on squall", "squall", "", "messages_lost", "count", "messages_lost needs message_accounting, which the squall profile"},
		{"presence on socketio", "socketio", "", "ghost_presence_duration", "max", "ghost_presence_duration needs presence, which the socketio profile"},
		{"tiers on generic", "generic", generic, "tier_connections", "count", "tier_connections needs fallback_tiers, which the generic profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("caps.yaml", []byte(fmt.Sprintf(base, tt.proto, tt.settings, tt.metric, tt.agg)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
	ok := []struct{ proto, settings, metric, agg string }{
		{"generic", generic, "messages_lost", "count"},
		{"generic", generic, "ordering_violations", "count"},
		{"centrifugo", "", "lost_acked_messages", "count"},
		{"squall", "", "ghost_presence_duration", "max"},
	}
	for _, o := range ok {
		if _, err := Parse("caps.yaml", []byte(fmt.Sprintf(base, o.proto, o.settings, o.metric, o.agg))); err != nil {
			t.Errorf("%s with %s refused: %v", o.metric, o.proto, err)
		}
	}
}
