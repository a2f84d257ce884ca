// Package tlstest makes throwaway certificates for tests: a CA, a server certificate it signs for
// loopback (127.0.0.1, ::1, localhost) plus any addresses and names asked for, and a client
// certificate for mutual TLS, written as PEM files into a test's temporary directory. The files are
// readable by anyone, so that a container running as nobody can read them when mounted.
//
// Everything it makes is generated afresh per call (ECDSA P-256, valid for a day) and never
// leaves the test. Its functions are safe for concurrent use.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Files are the PEM files of one CA and what it signed.
type Files struct {
	Dir        string // the directory holding them
	CA         string // the CA's certificate (the bundle clients trust)
	ServerCert string // the server's certificate
	ServerKey  string // its key
	ClientCert string // a client certificate (CN "squall-test-client")
	ClientKey  string // its key
	// ServerName is a DNS name the server certificate carries besides the loopback ones.
	ServerName string
	// Pool holds the CA, for a client's tls.Config.RootCAs.
	Pool *x509.CertPool
}

// ClientConfig is a TLS client configuration that trusts the CA.
func (f Files) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: f.Pool, MinVersion: tls.VersionTLS12}
}

// Make writes a fresh CA, a server certificate for loopback plus names, and a client certificate
// into t's temporary directory.
func Make(t testing.TB, names ...string) Files {
	t.Helper()
	return MakeFor(t, nil, names...)
}

// MakeFor is Make for a server that also answers on ips (a container's or a second interface's
// address).
func MakeFor(t testing.TB, ips []net.IP, names ...string) Files {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("tlstest: %v", err)
	}
	caKey, caCert, caDER := mustCA(t)
	f := Files{Dir: dir, CA: filepath.Join(dir, "ca.pem"), ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"), ServerName: "squall.test",
		Pool: x509.NewCertPool()}
	f.Pool.AddCert(caCert)
	writePEM(t, f.CA, "CERTIFICATE", caDER)
	dns := append([]string{"localhost", f.ServerName}, names...)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "squall-test-server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: dns, IPAddresses: append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, ips...),
	}
	leaf(t, srv, caCert, caKey, f.ServerCert, f.ServerKey)
	cli := &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "squall-test-client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	leaf(t, cli, caCert, caKey, f.ClientCert, f.ClientKey)
	return f
}

// OtherCA writes the certificate of a fresh CA that signed nothing: the bundle of a client that
// trusts the wrong authority.
func OtherCA(t testing.TB) string {
	t.Helper()
	_, _, der := mustCA(t)
	p := filepath.Join(t.TempDir(), "other-ca.pem")
	writePEM(t, p, "CERTIFICATE", der)
	return p
}

func mustCA(t testing.TB) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "squall test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("tlstest: CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tlstest: CA: %v", err)
	}
	return key, cert, der
}

func leaf(t testing.TB, tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certPath, keyPath string) {
	key := mustKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("tlstest: certificate: %v", err)
	}
	writePEM(t, certPath, "CERTIFICATE", der)
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("tlstest: key: %v", err)
	}
	writePEM(t, keyPath, "PRIVATE KEY", kb)
}

func mustKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("tlstest: key: %v", err)
	}
	return k
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatalf("tlstest: %v", err)
	}
}
