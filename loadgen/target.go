package loadgen

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/squall-dev/squall/refserver/protocol"
)

// Endpoint is one WebSocket address clients connect to, with the metrics URL of the node behind it
// (empty when it has none).
type Endpoint struct {
	URL        string `json:"url"`
	MetricsURL string `json:"metrics_url,omitempty"`
}

// Target is what a run connects to and how its clients speak there. It is a plain value: a job
// carries it to a worker as JSON, and whoever started the gateway behind it (loadgen/embedded, a
// test, nobody for a URL) owns that gateway's life.
//
// Clients are spread over the endpoints by client number. The endpoints are taken to hold separate
// rooms (each node its own roomSeq) unless SharedRooms says they are nodes of one gateway that share
// rooms through a broker.
type Target struct {
	Endpoints []Endpoint `json:"endpoints"`
	// Secret signs the clients' tokens (HS256); empty means protocol.DevSecret.
	Secret string `json:"secret,omitempty"`
	// SharedRooms says the endpoints share rooms (one roomSeq per room across them).
	SharedRooms bool `json:"shared_rooms,omitempty"`
	// Protocol is what the clients speak (default: the squall protocol).
	Protocol ProtocolSpec `json:"protocol,omitzero"`
}

// secret is the key client tokens are signed with.
func (t Target) secret() []byte {
	if t.Secret == "" {
		return []byte(protocol.DevSecret)
	}
	return []byte(t.Secret)
}

// Validate reports what makes the target unusable.
func (t Target) Validate() error {
	var errs []error
	if len(t.Endpoints) == 0 {
		errs = append(errs, errors.New("target: no endpoints"))
	}
	for i, ep := range t.Endpoints {
		if _, err := ParseURL(ep.URL); err != nil {
			errs = append(errs, fmt.Errorf("target: endpoint %d: %w", i, err))
		}
	}
	if _, err := NewProtocol(t.Protocol); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// URLTarget is the target of a running gateway at one ws:// URL (see ParseURL), speaking the squall
// protocol, with its metrics at the same host's /metrics.
func URLTarget(raw string) (Target, error) {
	ep, err := ParseURL(raw)
	if err != nil {
		return Target{}, err
	}
	return Target{Endpoints: []Endpoint{ep}}, nil
}

// ParseURL checks a ws:// URL (a bare host:port gets ws:// and /ws added) and derives the metrics
// URL from it (the same host's /metrics).
func ParseURL(raw string) (Endpoint, error) {
	if raw == "" {
		return Endpoint{}, errors.New("target: empty URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "ws://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Endpoint{}, fmt.Errorf("target %q: %w", raw, err)
	}
	switch u.Scheme {
	case "ws":
	case "wss":
		return Endpoint{}, fmt.Errorf("target %q: wss is not supported yet", raw)
	default:
		return Endpoint{}, fmt.Errorf("target %q: unknown scheme %q (want ws://)", raw, u.Scheme)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return Endpoint{}, fmt.Errorf("target %q: want host:port with a port from 1 to 65535", raw)
	}
	if u.Fragment != "" || u.User != nil {
		return Endpoint{}, fmt.Errorf("target %q: a WebSocket URL has no fragment or user info", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = protocol.PathWS
	}
	m := url.URL{Scheme: "http", Host: u.Host, Path: protocol.PathMetrics}
	return Endpoint{URL: u.String(), MetricsURL: m.String()}, nil
}
