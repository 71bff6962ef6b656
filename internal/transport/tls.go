package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ErrKeyMismatch is the cause of a Dial failure when the dialed node
// presents a key other than the pinned one; match it with errors.Is.
var ErrKeyMismatch = errors.New("peer key does not match the pinned node key")

// selfSignedCert returns a self-signed certificate over id's key. Validity
// dates are wide and never checked: peers verify the key, not the chain.
func selfSignedCert(id Identity) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: id.Public().String()},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, id.Key.Public(), id.Key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.Key}, nil
}

// peerKey extracts the Ed25519 key from the leaf of a raw certificate chain.
// The TLS 1.3 CertificateVerify message has already proven that the peer
// holds the matching private key when crypto/tls calls the verify hooks.
func peerKey(rawCerts [][]byte) (PublicKey, error) {
	if len(rawCerts) == 0 {
		return PublicKey{}, errors.New("peer presented no certificate")
	}
	cert, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return PublicKey{}, fmt.Errorf("parse peer certificate: %w", err)
	}
	return certKey(cert)
}

func certKey(cert *x509.Certificate) (PublicKey, error) {
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("peer certificate key is %T, want Ed25519", cert.PublicKey)
	}
	var pk PublicKey
	copy(pk[:], pub)
	return pk, nil
}

// serverTLS is the listener's TLS configuration: TLS 1.3 only, a client
// certificate is required and must carry an Ed25519 key; which key is decided
// by the protocol handler.
func serverTLS(cert tls.Certificate, alpns []string) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		ClientAuth:             tls.RequireAnyClientCert,
		NextProtos:             alpns,
		SessionTicketsDisabled: true,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			_, err := peerKey(rawCerts)
			return err
		},
	}
}

// clientTLS is the dialer's TLS configuration. InsecureSkipVerify only turns
// off CA chain and host name checks; VerifyPeerCertificate replaces them with
// the stronger check that the peer's key is exactly the pinned one.
func clientTLS(cert tls.Certificate, pinned PublicKey, alpn string) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		MaxVersion:             tls.VersionTLS13,
		Certificates:           []tls.Certificate{cert},
		NextProtos:             []string{alpn},
		SessionTicketsDisabled: true,
		InsecureSkipVerify:     true,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			got, err := peerKey(rawCerts)
			if err != nil {
				return err
			}
			if got != pinned {
				return fmt.Errorf("%w: want %s, got %s", ErrKeyMismatch, pinned, got)
			}
			return nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if cs.NegotiatedProtocol != alpn {
				return fmt.Errorf("peer negotiated ALPN %q, want %q", cs.NegotiatedProtocol, alpn)
			}
			return nil
		},
	}
}
