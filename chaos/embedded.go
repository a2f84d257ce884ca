package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
)

// Embedded runs Toxiproxy inside this process and drives its proxy
// collection directly (no HTTP on the way). ServeAPI additionally exposes the
// standard Toxiproxy HTTP API over the same proxies, so the toxiproxy-cli or
// an [External] can drive them too.
//
// It is safe for concurrent use. Close stops every proxy.
type Embedded struct {
	server *toxiproxy.ApiServer
	logger *slog.Logger
	opts   EmbeddedOptions

	mu     sync.Mutex
	source map[string]*sourceProxy // proxies with PreserveSourceIP, by name
}

// EmbeddedOptions configures an Embedded. The zero value gives stock
// Toxiproxy behaviour.
type EmbeddedOptions struct {
	// PreserveSourceIP makes proxies created by Proxy connect to their
	// upstream from each client's own loopback address instead of the
	// proxy's, so a gateway that limits connections per remote IP (the
	// reference gateway allows 5 by default) counts the clients, not the
	// proxy. Toxics behave exactly as in stock Toxiproxy; such proxies show
	// as disabled to the HTTP API of ServeAPI and must be enabled and
	// disabled through this type. Default false.
	PreserveSourceIP bool
}

// NewEmbedded returns an embedded Toxiproxy with no proxies. Toxiproxy's logs
// go to logger (nil discards them); see the package documentation for the
// level mapping.
func NewEmbedded(logger *slog.Logger, opts EmbeddedOptions) *Embedded {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	zl := newZerolog(logger)
	return &Embedded{
		server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zl),
		logger: logger,
		opts:   opts,
		source: map[string]*sourceProxy{},
	}
}

func (e *Embedded) sourceProxy(name string) *sourceProxy {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.source[name]
}

// Proxy implements [Proxies].
func (e *Embedded) Proxy(_ context.Context, name, listen, upstream string) (ProxyInfo, error) {
	if name == "" || upstream == "" {
		return ProxyInfo{}, fmt.Errorf("chaos: proxy %q: name and upstream are required", name)
	}
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	p := toxiproxy.NewProxy(e.server, name, listen, upstream)
	if err := e.server.Collection.Add(p, !e.opts.PreserveSourceIP); err != nil {
		return ProxyInfo{}, fmt.Errorf("chaos: create proxy %q: %w", name, mapEmbeddedErr(err))
	}
	info := proxyInfo(p)
	if e.opts.PreserveSourceIP {
		sp, err := startSourceProxy(e.server, p, listen)
		if err != nil {
			_ = e.server.Collection.Remove(name)
			return ProxyInfo{}, fmt.Errorf("chaos: create proxy %q: %w", name, err)
		}
		e.mu.Lock()
		e.source[name] = sp
		e.mu.Unlock()
		info = sp.info()
	}
	e.logger.Debug("proxy created", "proxy", name, "listen", info.Listen, "upstream", upstream)
	return info, nil
}

// Info returns the current state of a proxy.
func (e *Embedded) Info(proxy string) (ProxyInfo, error) {
	p, err := e.get(proxy)
	if err != nil {
		return ProxyInfo{}, err
	}
	if sp := e.sourceProxy(proxy); sp != nil {
		return sp.info(), nil
	}
	return proxyInfo(p), nil
}

func proxyInfo(p *toxiproxy.Proxy) ProxyInfo {
	p.Lock()
	defer p.Unlock()
	return ProxyInfo{Name: p.Name, Listen: p.Listen, Upstream: p.Upstream, Enabled: p.Enabled}
}

// DeleteProxy implements [Proxies].
func (e *Embedded) DeleteProxy(_ context.Context, proxy string) error {
	e.mu.Lock()
	sp := e.source[proxy]
	delete(e.source, proxy)
	e.mu.Unlock()
	if sp != nil {
		sp.stop()
	}
	if err := e.server.Collection.Remove(proxy); err != nil {
		return fmt.Errorf("chaos: delete proxy %q: %w", proxy, mapEmbeddedErr(err))
	}
	return nil
}

// AddToxic implements [Proxies].
func (e *Embedded) AddToxic(_ context.Context, proxy string, t Toxic) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("chaos: add toxic %q to %q: %w", t.Name, proxy, err)
	}
	p, err := e.get(proxy)
	if err != nil {
		return err
	}
	body, err := json.Marshal(wireToxic(t))
	if err != nil {
		return fmt.Errorf("chaos: add toxic %q to %q: %w", t.Name, proxy, err)
	}
	if _, err := p.Toxics.AddToxicJson(bytes.NewReader(body)); err != nil {
		return fmt.Errorf("chaos: add toxic %q to %q: %w", t.Name, proxy, mapEmbeddedErr(err))
	}
	return nil
}

// RemoveToxic implements [Proxies]. ctx must not be nil (Toxiproxy logs
// through it).
func (e *Embedded) RemoveToxic(ctx context.Context, proxy, toxic string) error {
	p, err := e.get(proxy)
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if err := p.Toxics.RemoveToxic(ctx, toxic); err != nil {
		return fmt.Errorf("chaos: remove toxic %q from %q: %w", toxic, proxy, mapEmbeddedErr(err))
	}
	return nil
}

// Toxics implements [Proxies].
func (e *Embedded) Toxics(_ context.Context, proxy string) ([]Toxic, error) {
	p, err := e.get(proxy)
	if err != nil {
		return nil, err
	}
	// The collection's toxics marshal to the API's JSON; decoding that keeps
	// one mapping for both implementations.
	data, err := json.Marshal(p.Toxics.GetToxicArray())
	if err != nil {
		return nil, fmt.Errorf("chaos: list toxics of %q: %w", proxy, err)
	}
	return decodeToxics(data)
}

// Disable implements [Proxies].
func (e *Embedded) Disable(_ context.Context, proxy string) error {
	p, err := e.get(proxy)
	if err != nil {
		return err
	}
	if sp := e.sourceProxy(proxy); sp != nil {
		sp.stop()
		return nil
	}
	p.Stop()
	return nil
}

// Enable implements [Proxies]. Enabling an enabled proxy is a no-op.
func (e *Embedded) Enable(_ context.Context, proxy string) error {
	p, err := e.get(proxy)
	if err != nil {
		return err
	}
	if sp := e.sourceProxy(proxy); sp != nil {
		if err := sp.start(); err != nil {
			return fmt.Errorf("chaos: enable proxy %q: %w", proxy, err)
		}
		return nil
	}
	if err := p.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
		return fmt.Errorf("chaos: enable proxy %q: %w", proxy, err)
	}
	return nil
}

// ServeAPI serves the Toxiproxy HTTP API for this instance's proxies on ln
// until ctx is cancelled, then shuts the HTTP server down and returns nil.
// Like upstream Toxiproxy it answers 403 to a User-Agent starting with
// "Mozilla/".
func (e *Embedded) ServeAPI(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           e.server.Routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(e.logger.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("chaos: toxiproxy api: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("chaos: toxiproxy api shutdown: %w", err)
	}
	return nil
}

// Close stops every proxy and closes its connections.
func (e *Embedded) Close() error {
	e.mu.Lock()
	sps := e.source
	e.source = map[string]*sourceProxy{}
	e.mu.Unlock()
	for _, sp := range sps {
		sp.stop()
	}
	return e.server.Collection.Clear()
}

func (e *Embedded) get(proxy string) (*toxiproxy.Proxy, error) {
	p, err := e.server.Collection.Get(proxy)
	if err != nil {
		return nil, fmt.Errorf("chaos: proxy %q: %w", proxy, mapEmbeddedErr(err))
	}
	return p, nil
}

// mapEmbeddedErr turns Toxiproxy's API errors into this package's sentinels.
func mapEmbeddedErr(err error) error {
	var ae *toxiproxy.ApiError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae {
	case toxiproxy.ErrProxyNotFound:
		return ErrProxyNotFound
	case toxiproxy.ErrProxyAlreadyExists:
		return ErrProxyExists
	case toxiproxy.ErrToxicNotFound:
		return ErrToxicNotFound
	case toxiproxy.ErrToxicAlreadyExists:
		return ErrToxicExists
	}
	return errors.New(ae.Message)
}

// toxicJSON is a toxic as the Toxiproxy API reads and writes it.
type toxicJSON struct {
	Name       string           `json:"name"`
	Type       string           `json:"type"`
	Stream     string           `json:"stream"`
	Toxicity   float32          `json:"toxicity"`
	Attributes map[string]int64 `json:"attributes"`
}

func wireToxic(t Toxic) toxicJSON {
	t = t.withDefaults()
	attrs := t.Attributes
	if attrs == nil {
		attrs = map[string]int64{}
	}
	return toxicJSON{
		Name: t.Name, Type: string(t.Type), Stream: string(t.Stream),
		Toxicity: float32(t.Toxicity), Attributes: attrs,
	}
}

func decodeToxics(data []byte) ([]Toxic, error) {
	var in []toxicJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("chaos: decode toxics: %w", err)
	}
	out := make([]Toxic, len(in))
	for i, t := range in {
		out[i] = Toxic{
			Name: t.Name, Type: ToxicType(t.Type), Stream: Stream(t.Stream),
			Toxicity: math.Round(float64(t.Toxicity)*1e6) / 1e6, Attributes: t.Attributes,
		}
	}
	return out, nil
}
