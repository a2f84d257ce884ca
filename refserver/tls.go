package refserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
)

// validateTLS checks that the TLS settings come as a pair and load.
func (c Config) validateTLS() error {
	if c.TLSCert == "" && c.TLSKey == "" {
		return nil
	}
	if c.TLSCert == "" || c.TLSKey == "" {
		return errors.New("tls-cert and tls-key: both or neither (a certificate and its key)")
	}
	if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
		return fmt.Errorf("tls-cert/tls-key: %w", err)
	}
	return nil
}

// tlsListener wraps ln in TLS when the config has a certificate (HTTP/1.1 only, as WebSocket
// upgrades need), and returns ln as it is otherwise.
func (c Config) tlsListener(ln net.Listener) (net.Listener, error) {
	if c.TLSCert == "" && c.TLSKey == "" {
		return ln, nil
	}
	if err := c.validateTLS(); err != nil {
		return ln, fmt.Errorf("refserver: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return ln, fmt.Errorf("refserver: tls-cert/tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	return tls.NewListener(ln, cfg), nil
}
