package loadgen

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
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
	// SharedRooms says the endpoints share rooms (one roomSeq per room across them).
	SharedRooms bool `json:"shared_rooms,omitempty"`
	// Protocol is what the clients speak (default: the squall protocol).
	Protocol ProtocolSpec `json:"protocol,omitzero"`
	// Auth is where the clients' tokens come from and where they go (default: HS256 JWTs signed
	// with protocol.DevSecret, placed where the protocol puts them).
	Auth AuthSpec `json:"auth,omitzero"`
	// Conn is how each WebSocket is opened: TLS, headers, Origin, subprotocols.
	Conn ConnSpec `json:"conn,omitzero"`
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
	if err := t.Auth.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := t.Conn.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// URLTarget is the target of a running gateway at one ws:// or wss:// URL (see ParseURL), speaking
// the squall protocol, with its metrics at the same host's /metrics.
func URLTarget(raw string) (Target, error) {
	ep, err := ParseURL(raw)
	if err != nil {
		return Target{}, err
	}
	return Target{Endpoints: []Endpoint{ep}}, nil
}

// ParseURL checks a ws:// or wss:// URL on any host and derives the metrics URL from it (the same
// host's /metrics, over http or https). A bare host:port gets ws:// and /ws; a URL without a path
// gets /ws (the reference gateway's); a URL without a port gets 80 (ws) or 443 (wss).
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
	metrics := "http"
	switch u.Scheme {
	case "ws":
	case "wss":
		metrics = "https"
	default:
		return Endpoint{}, fmt.Errorf("target %q: unknown scheme %q (want ws:// or wss://)", raw, u.Scheme)
	}
	if u.Port() == "" && u.Hostname() != "" && !strings.HasSuffix(u.Host, ":") {
		u.Host = net.JoinHostPort(u.Hostname(), map[string]string{"ws": "80", "wss": "443"}[u.Scheme])
	}
	host, port, err := net.SplitHostPort(u.Host)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return Endpoint{}, fmt.Errorf("target %q: want host:port with a port from 1 to 65535", raw)
	}
	if u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return Endpoint{}, fmt.Errorf("target %q: a WebSocket URL has no fragment or user info", raw)
	}
	if u.Path == "" {
		u.Path = protocol.PathWS
	}
	m := url.URL{Scheme: metrics, Host: u.Host, Path: protocol.PathMetrics}
	return Endpoint{URL: u.String(), MetricsURL: m.String()}, nil
}

// Describe is one line saying what the clients connect to and how: the endpoints, the protocol,
// where the tokens come from and go, and the TLS and header settings (never a secret or a token).
func (t Target) Describe() string {
	var b strings.Builder
	for i, ep := range t.Endpoints {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(ep.URL)
	}
	proto := cmpOr(t.Protocol.Name, ProtocolSquall)
	fmt.Fprintf(&b, " protocol=%s", proto)
	a := t.Auth
	switch cmpOr(a.Source, AuthJWT) {
	case AuthJWT:
		fmt.Fprintf(&b, " auth=jwt/%s", cmpOr(a.Alg, "HS256"))
		if a.KeyFile != "" {
			fmt.Fprintf(&b, "(key %s)", a.KeyFile)
		} else if a.Secret == "" {
			b.WriteString("(dev secret)")
		}
	case AuthTokenFile:
		fmt.Fprintf(&b, " auth=token_file(%s)", a.TokenFile)
	default:
		b.WriteString(" auth=none")
	}
	if a.Source != AuthNone {
		place := a.Place
		if place == "" {
			if p, err := NewProtocol(t.Protocol); err == nil {
				place = p.tokenPlace()
			}
		}
		fmt.Fprintf(&b, " in=%s", place)
		if a.Name != "" {
			fmt.Fprintf(&b, "(%s)", a.Name)
		}
	}
	tls := t.Conn.TLS
	if slices.ContainsFunc(t.Endpoints, func(ep Endpoint) bool { return strings.HasPrefix(ep.URL, "wss://") }) {
		b.WriteString(" tls=")
		switch {
		case tls.InsecureSkipVerify:
			b.WriteString("UNVERIFIED(insecure_skip_verify)")
		case tls.CAFile != "":
			fmt.Fprintf(&b, "ca:%s", tls.CAFile)
		default:
			b.WriteString("system-roots")
		}
		if tls.ServerName != "" {
			fmt.Fprintf(&b, ",server_name:%s", tls.ServerName)
		}
		if tls.CertFile != "" {
			fmt.Fprintf(&b, ",client_cert:%s", tls.CertFile)
		}
	}
	if t.Conn.Origin != "" {
		fmt.Fprintf(&b, " origin=%s", t.Conn.Origin)
	}
	if len(t.Conn.Subprotocols) > 0 {
		fmt.Fprintf(&b, " subprotocols=%s", strings.Join(t.Conn.Subprotocols, ","))
	}
	if len(t.Conn.Headers) > 0 {
		names := slices.Sorted(maps.Keys(t.Conn.Headers))
		fmt.Fprintf(&b, " headers=%s", strings.Join(names, ","))
	}
	return b.String()
}
