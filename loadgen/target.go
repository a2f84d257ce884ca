package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Endpoint is one WebSocket address clients connect to, with the metrics URL of the node behind it
// (empty when it has none).
type Endpoint struct {
	URL        string `json:"url"`
	MetricsURL string `json:"metrics_url,omitempty"`
}

// Target is what a run connects to. Clients are spread over the endpoints by client number; tokens
// are signed with Secret. Endpoints are taken to hold separate rooms (each node its own roomSeq);
// a target whose endpoints share rooms (a cluster behind one broker) also implements
// SharedRooms() bool returning true.
type Target interface {
	Endpoints() []Endpoint
	Secret() []byte
}

// URLTarget is a running gateway at a ws:// URL.
type URLTarget struct {
	URL        string // ws://host:port/ws
	MetricsURL string // optional http://host:port/metrics
	// AuthSecret signs client tokens (default protocol.DevSecret).
	AuthSecret []byte
}

var _ Target = (*URLTarget)(nil)

// ParseURLTarget checks a ws:// URL (a bare host:port gets ws:// and /ws added) and derives the
// metrics URL from it.
func ParseURLTarget(raw string) (*URLTarget, error) {
	if raw == "" {
		return nil, errors.New("target: empty URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "ws://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	switch u.Scheme {
	case "ws":
	case "wss":
		return nil, fmt.Errorf("target %q: wss is not supported (loopback traffic only)", raw)
	default:
		return nil, fmt.Errorf("target %q: unknown scheme %q (want ws://)", raw, u.Scheme)
	}
	if u.Host == "" || u.Port() == "" {
		return nil, fmt.Errorf("target %q: want host:port", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = protocol.PathWS
	}
	m := url.URL{Scheme: "http", Host: u.Host, Path: protocol.PathMetrics}
	return &URLTarget{URL: u.String(), MetricsURL: m.String()}, nil
}

// Endpoints implements Target.
func (t *URLTarget) Endpoints() []Endpoint {
	return []Endpoint{{URL: t.URL, MetricsURL: t.MetricsURL}}
}

// Secret implements Target.
func (t *URLTarget) Secret() []byte {
	if len(t.AuthSecret) > 0 {
		return t.AuthSecret
	}
	return []byte(protocol.DevSecret)
}

// closer is implemented by targets that own processes or servers.
type closer interface {
	Close(ctx context.Context) error
}
