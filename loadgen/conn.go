package loadgen

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/template"
)

// ConnSpec is how each client's WebSocket is opened beyond its URL: TLS for wss:// endpoints, the
// headers of the upgrade request, its Origin and the subprotocols offered. The zero value opens a
// plain connection with no extra header, as a browser on the gateway's own page would not: set
// Origin when the gateway checks it.
//
// Fields carry both JSON tags (a job carries the target to workers) and YAML tags (a scenario
// file's target: section holds the same fields).
type ConnSpec struct {
	// TLS configures wss:// endpoints (ignored by ws:// ones).
	TLS TLSSpec `json:"tls,omitzero" yaml:"tls"`
	// Headers are added to every upgrade request. Values are templates seeing {{.Token}} (the
	// client's token), {{.User}} and {{.Client}}: "Bearer {{.Token}}", "session={{.User}}".
	Headers map[string]string `json:"headers,omitempty" yaml:"headers"`
	// Origin is the Origin header of every upgrade request (empty: none).
	Origin string `json:"origin,omitempty" yaml:"origin"`
	// Subprotocols are offered in Sec-WebSocket-Protocol, in order (empty: none).
	Subprotocols []string `json:"subprotocols,omitempty" yaml:"subprotocols"`
}

// TLSSpec is the client side of TLS for wss:// endpoints. The zero value verifies the server's
// certificate against the system's roots and the URL's host name.
type TLSSpec struct {
	// CAFile is a PEM bundle of the CAs that may sign the server's certificate (empty: the
	// system's roots).
	CAFile string `json:"ca_file,omitempty" yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for gateways that want
	// mutual TLS (both or neither).
	CertFile string `json:"cert_file,omitempty" yaml:"cert_file"`
	KeyFile  string `json:"key_file,omitempty" yaml:"key_file"`
	// ServerName is the name the server's certificate must carry, and the SNI sent (empty: the
	// URL's host). Set it when the URL names an address or a proxy.
	ServerName string `json:"server_name,omitempty" yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate: the connection is encrypted but the server is
	// not authenticated. Never the default; for a staging gateway with a throwaway certificate.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty" yaml:"insecure_skip_verify"`
}

// Config builds the tls.Config the spec describes, reading its files.
func (s TLSSpec) Config() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: s.ServerName, InsecureSkipVerify: s.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca_file %s: no PEM certificate in it", s.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, errors.New("tls: cert_file and key_file go together (a client certificate and its key)")
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Validate reports what makes the spec unusable (unreadable files, a bad header template).
func (s ConnSpec) Validate() error {
	var errs []error
	if _, err := s.TLS.Config(); err != nil {
		errs = append(errs, fmt.Errorf("target: %w", err))
	}
	if _, err := s.headerTemplates(); err != nil {
		errs = append(errs, err)
	}
	for _, p := range s.Subprotocols {
		if p == "" || strings.ContainsAny(p, " ,\t\r\n") {
			errs = append(errs, fmt.Errorf("target: subprotocol %q: want a token without spaces or commas", p))
		}
	}
	return errors.Join(errs...)
}

// headerTemplate is one templated header of the upgrade request.
type headerTemplate struct {
	name string
	tmpl *template.Template
}

// headerTemplates compiles the headers in a stable order.
func (s ConnSpec) headerTemplates() ([]headerTemplate, error) {
	names := make([]string, 0, len(s.Headers))
	for n := range s.Headers {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []headerTemplate
	var errs []error
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, " :\t\r\n") {
			errs = append(errs, fmt.Errorf("target: header name %q is not a valid HTTP header name", n))
			continue
		}
		switch http.CanonicalHeaderKey(n) {
		case "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Upgrade", "Connection", "Sec-Websocket-Protocol":
			errs = append(errs, fmt.Errorf("target: header %s is set by the WebSocket handshake (use subprotocols for Sec-WebSocket-Protocol)", n))
			continue
		}
		t, err := template.New(n).Option("missingkey=error").Parse(s.Headers[n])
		if err != nil {
			errs = append(errs, fmt.Errorf("target: header %s template: %w", n, err))
			continue
		}
		out = append(out, headerTemplate{name: n, tmpl: t})
	}
	return out, errors.Join(errs...)
}

// connHeaders builds each client's upgrade request headers.
type connHeaders struct {
	origin    string
	protocols []string
	headers   []headerTemplate
}

func newConnHeaders(s ConnSpec) (*connHeaders, error) {
	hs, err := s.headerTemplates()
	if err != nil {
		return nil, err
	}
	return &connHeaders{origin: s.Origin, protocols: s.Subprotocols, headers: hs}, nil
}

// header returns the upgrade request's headers for one client (nil when there are none).
func (h *connHeaders) header(d templateData) (http.Header, error) {
	if h.origin == "" && len(h.protocols) == 0 && len(h.headers) == 0 {
		return nil, nil
	}
	hdr := http.Header{}
	if h.origin != "" {
		hdr.Set("Origin", h.origin)
	}
	if len(h.protocols) > 0 {
		hdr.Set("Sec-WebSocket-Protocol", strings.Join(h.protocols, ", "))
	}
	var b bytes.Buffer
	for _, t := range h.headers {
		b.Reset()
		if err := t.tmpl.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("header %s: %w", t.name, err)
		}
		hdr.Set(t.name, b.String())
	}
	return hdr, nil
}

// ExplainDialError says what a failed dial of endpoint raw means, naming the setting to check:
// certificate problems name the scenario field and the loadgen flag of the TLS setting involved.
// Other errors are returned as they are.
func ExplainDialError(raw string, err error) error {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		alert    tls.AlertError
		recHdr   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &hostname):
		return fmt.Errorf("target %s: TLS certificate rejected: %v (check target.tls.server_name / --tls-server-name: the name the certificate must carry)", raw, hostname)
	case errors.As(err, &unknown):
		return fmt.Errorf("target %s: TLS certificate rejected: %v (check target.tls.ca_file / --tls-ca: the CA bundle that signed the gateway's certificate)", raw, unknown)
	case errors.As(err, &invalid):
		return fmt.Errorf("target %s: TLS certificate rejected: %v (check the gateway's certificate, target.tls.ca_file / --tls-ca and target.tls.server_name / --tls-server-name)", raw, invalid)
	case errors.As(err, &verify):
		return fmt.Errorf("target %s: TLS certificate rejected: %v (check target.tls.ca_file / --tls-ca and target.tls.server_name / --tls-server-name)", raw, verify)
	case errors.As(err, &alert):
		return fmt.Errorf("target %s: the gateway ended the TLS handshake: %v (a client certificate it wants? check target.tls.cert_file and key_file / --tls-cert and --tls-key)", raw, err)
	case errors.As(err, &recHdr):
		return fmt.Errorf("target %s: the gateway does not speak TLS here: %v (use ws:// instead of wss://?)", raw, err)
	}
	return err
}
