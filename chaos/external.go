package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// External drives a Toxiproxy server the user runs, through its HTTP API
// (the one toxiproxy-server serves on :8474 by default).
//
// It speaks the same JSON as Toxiproxy's Go client package but carries a
// context on every request, which that client cannot. It sends the
// User-Agent "squall-chaos" (Toxiproxy answers 403 to any "Mozilla/" agent).
// It is safe for concurrent use.
type External struct {
	endpoint string
	client   *http.Client
}

// ExternalOptions configures an External. The zero value is ready to use.
type ExternalOptions struct {
	// HTTPClient sends the requests. Nil means a client with no timeout of
	// its own: every call is bounded by its context.
	HTTPClient *http.Client
}

// NewExternal returns a client for the Toxiproxy API at endpoint
// ("host:port" or an http(s) URL).
func NewExternal(endpoint string, opts ExternalOptions) *External {
	if !strings.HasPrefix(endpoint, "http://") && !strings.HasPrefix(endpoint, "https://") {
		endpoint = "http://" + endpoint
	}
	c := opts.HTTPClient
	if c == nil {
		c = &http.Client{}
	}
	return &External{endpoint: strings.TrimRight(endpoint, "/"), client: c}
}

const userAgent = "squall-chaos"

// Version returns the server's version string, which also checks that the
// endpoint is a Toxiproxy.
func (x *External) Version(ctx context.Context) (string, error) {
	var v struct {
		Version string `json:"version"`
	}
	if err := x.do(ctx, http.MethodGet, "/version", nil, &v); err != nil {
		return "", fmt.Errorf("chaos: toxiproxy version: %w", err)
	}
	return v.Version, nil
}

// Proxy implements [Proxies].
func (x *External) Proxy(ctx context.Context, name, listen, upstream string) (ProxyInfo, error) {
	if name == "" || upstream == "" {
		return ProxyInfo{}, fmt.Errorf("chaos: proxy %q: name and upstream are required", name)
	}
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	in := ProxyInfo{Name: name, Listen: listen, Upstream: upstream, Enabled: true}
	var out ProxyInfo
	if err := x.do(ctx, http.MethodPost, "/proxies", in, &out); err != nil {
		return ProxyInfo{}, fmt.Errorf("chaos: create proxy %q: %w", name, err)
	}
	return out, nil
}

// Info returns the current state of a proxy.
func (x *External) Info(ctx context.Context, proxy string) (ProxyInfo, error) {
	var out ProxyInfo
	if err := x.do(ctx, http.MethodGet, "/proxies/"+url.PathEscape(proxy), nil, &out); err != nil {
		return ProxyInfo{}, fmt.Errorf("chaos: proxy %q: %w", proxy, err)
	}
	return out, nil
}

// DeleteProxy implements [Proxies].
func (x *External) DeleteProxy(ctx context.Context, proxy string) error {
	if err := x.do(ctx, http.MethodDelete, "/proxies/"+url.PathEscape(proxy), nil, nil); err != nil {
		return fmt.Errorf("chaos: delete proxy %q: %w", proxy, err)
	}
	return nil
}

// AddToxic implements [Proxies].
func (x *External) AddToxic(ctx context.Context, proxy string, t Toxic) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("chaos: add toxic %q to %q: %w", t.Name, proxy, err)
	}
	path := "/proxies/" + url.PathEscape(proxy) + "/toxics"
	if err := x.do(ctx, http.MethodPost, path, wireToxic(t), nil); err != nil {
		return fmt.Errorf("chaos: add toxic %q to %q: %w", t.Name, proxy, err)
	}
	return nil
}

// RemoveToxic implements [Proxies].
func (x *External) RemoveToxic(ctx context.Context, proxy, toxic string) error {
	path := "/proxies/" + url.PathEscape(proxy) + "/toxics/" + url.PathEscape(toxic)
	if err := x.do(ctx, http.MethodDelete, path, nil, nil); err != nil {
		return fmt.Errorf("chaos: remove toxic %q from %q: %w", toxic, proxy, err)
	}
	return nil
}

// Toxics implements [Proxies].
func (x *External) Toxics(ctx context.Context, proxy string) ([]Toxic, error) {
	var raw json.RawMessage
	if err := x.do(ctx, http.MethodGet, "/proxies/"+url.PathEscape(proxy)+"/toxics", nil, &raw); err != nil {
		return nil, fmt.Errorf("chaos: list toxics of %q: %w", proxy, err)
	}
	return decodeToxics(raw)
}

// Disable implements [Proxies].
func (x *External) Disable(ctx context.Context, proxy string) error {
	return x.setEnabled(ctx, proxy, false)
}

// Enable implements [Proxies].
func (x *External) Enable(ctx context.Context, proxy string) error {
	return x.setEnabled(ctx, proxy, true)
}

func (x *External) setEnabled(ctx context.Context, proxy string, on bool) error {
	body := map[string]bool{"enabled": on}
	if err := x.do(ctx, http.MethodPatch, "/proxies/"+url.PathEscape(proxy), body, nil); err != nil {
		verb := "disable"
		if on {
			verb = "enable"
		}
		return fmt.Errorf("chaos: %s proxy %q: %w", verb, proxy, err)
	}
	return nil
}

// APIError is an error answer from a Toxiproxy API. It unwraps to the
// matching sentinel (ErrProxyNotFound, ...) when there is one.
type APIError struct {
	Status  int    // HTTP status
	Message string // Toxiproxy's "error" field
}

func (e *APIError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message) }

// Unwrap returns the sentinel that matches the answer, or nil.
func (e *APIError) Unwrap() error {
	switch {
	case e.Status == http.StatusNotFound && strings.HasPrefix(e.Message, "proxy not found"):
		return ErrProxyNotFound
	case e.Status == http.StatusNotFound && strings.HasPrefix(e.Message, "toxic not found"):
		return ErrToxicNotFound
	case e.Status == http.StatusConflict && strings.HasPrefix(e.Message, "proxy already exists"):
		return ErrProxyExists
	case e.Status == http.StatusConflict && strings.HasPrefix(e.Message, "toxic already exists"):
		return ErrToxicExists
	}
	return nil
}

func (x *External) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, x.endpoint+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := x.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &APIError{Status: resp.StatusCode}
		var msg struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &msg) == nil && msg.Error != "" {
			ae.Message = msg.Error
		} else {
			ae.Message = strings.TrimSpace(string(data))
		}
		return ae
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

var _ error = (*APIError)(nil)
