// Package auth owns the cluster secrets every node derives from the cluster
// cookie and the proofs that bind those secrets to one TLS session.
//
// The raw cookie never leaves a node. From it each node derives four values
// with HMAC-SHA256 under distinct, versioned labels:
//
//   - the cluster ID, public, carried in tickets and logs;
//   - the client credential, carried in tickets, proving "a client of this
//     cluster";
//   - the node secret, never sent anywhere, proving "a node of this cluster";
//   - the capability key, never sent anywhere, with which nodes sign scoped,
//     expiring capabilities (Capability), such as the right to read one blob.
//
// Because the derivations are one-way, a client ticket cannot be turned back
// into the node secret. A secret is never sent itself: peers send a Proof,
// an HMAC of the secret over TLS exporter material, which is unique to one
// connection and therefore useless if replayed on another.
//
// All functions are pure and safe for concurrent use.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// UnsafeDefaultCookie is the placeholder cookie shipped in sample
// configurations. Derive refuses it so that a cluster is never started with a
// secret everybody knows.
const UnsafeDefaultCookie = "aspen-cookie-UNSAFE-CHANGE-ME"

// ExporterLabel is the TLS exporter label whose 32 bytes of keying material
// a Proof is computed over.
const ExporterLabel = "EXPORTER-aspen-proof"

// ExporterLen is the number of bytes of exporter material used for proofs.
const ExporterLen = 32

// ProofLen is the length in bytes of a Proof (an HMAC-SHA256 output).
const ProofLen = sha256.Size

// Derivation labels. Changing any of them changes every derived secret, so
// they carry a version suffix and must never be edited in place.
const (
	labelClusterID = "aspen/cluster-id/v1"
	labelClient    = "aspen/client-credential/v1"
	labelNode      = "aspen/node-secret/v1"
	labelCapKey    = "aspen/capability-key/v1"
	labelCap       = "aspen/capability/v1"
)

// Errors returned by Derive.
var (
	// ErrEmptyCookie means the cookie was empty.
	ErrEmptyCookie = errors.New("auth: cluster cookie is empty")
	// ErrUnsafeCookie means the cookie is the shipped placeholder
	// UnsafeDefaultCookie.
	ErrUnsafeCookie = errors.New("auth: cluster cookie is the unsafe default; set a random secret")
)

// Keys are the secrets every node derives from the cluster cookie.
type Keys struct {
	// ClusterID is the lowercase hex of the first 16 bytes of
	// HMAC-SHA256(cookie, "aspen/cluster-id/v1"). It is not secret.
	ClusterID string
	// Client is HMAC-SHA256(cookie, "aspen/client-credential/v1"). It is put
	// in tickets and proves a client of the cluster.
	Client []byte
	// Node is HMAC-SHA256(cookie, "aspen/node-secret/v1"). It never leaves a
	// node and proves a node of the cluster.
	Node []byte
	// Capability is HMAC-SHA256(cookie, "aspen/capability-key/v1"). It
	// never leaves a node; nodes sign capabilities with it.
	Capability []byte
}

// Derive computes the cluster Keys from cookie. It fails with ErrEmptyCookie
// or ErrUnsafeCookie when the cookie cannot protect a cluster. The result is
// deterministic: every node given the same cookie derives the same Keys.
func Derive(cookie string) (Keys, error) {
	switch cookie {
	case "":
		return Keys{}, fmt.Errorf("derive cluster keys: %w", ErrEmptyCookie)
	case UnsafeDefaultCookie:
		return Keys{}, fmt.Errorf("derive cluster keys: %w", ErrUnsafeCookie)
	}
	secret := []byte(cookie)
	id := mac(secret, []byte(labelClusterID))
	return Keys{
		ClusterID:  hex.EncodeToString(id[:16]),
		Client:     mac(secret, []byte(labelClient)),
		Node:       mac(secret, []byte(labelNode)),
		Capability: mac(secret, []byte(labelCapKey)),
	}, nil
}

// Proof binds secret to one TLS session: it returns
// HMAC-SHA256(secret, exporter), where exporter is the ExporterLen bytes of
// TLS keying material exported with ExporterLabel. Both ends of a connection
// compute the same exporter, so the receiver can check the proof with
// VerifyProof, while a proof captured on one connection fails on any other.
func Proof(secret, exporter []byte) []byte {
	return mac(secret, exporter)
}

// VerifyProof reports whether mac is Proof(secret, exporter). The comparison
// takes constant time.
func VerifyProof(secret, exporter, mac []byte) bool {
	return hmac.Equal(Proof(secret, exporter), mac)
}

// Capability returns the token granting what scope names (a service-defined
// string such as "blob.read:HASH") until expiresMs, in Unix milliseconds (0:
// no expiry). It is HMAC-SHA256(key, label 0x00 scope 0x00 expiresMs as 8
// big-endian bytes) with key = Keys.Capability, so every node can issue and
// check it, while its holder can neither widen the scope nor extend the
// expiry, nor derive any other secret from it. The holder proves the token
// with Proof like any secret; the verifier recomputes the token from the
// claimed scope and expiry and checks the proof against it. Checking the
// expiry against a clock is the verifier's job.
func Capability(key []byte, scope string, expiresMs int64) []byte {
	msg := make([]byte, 0, len(labelCap)+len(scope)+10)
	msg = append(append(append(msg, labelCap...), 0), scope...)
	msg = binary.BigEndian.AppendUint64(append(msg, 0), uint64(expiresMs))
	return mac(key, msg)
}

func mac(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}

// ConnVerifier checks the proofs that the requests of one connection carry
// against secret, computing the connection's expected proof once. Every
// request is checked: an earlier good proof admits nothing, and a bad one
// does not poison the connection. An empty secret admits nothing, since anyone can
// compute a proof over an empty key. Safe for concurrent use.
type ConnVerifier struct {
	secret   []byte
	exporter func() ([]byte, error)
	once     sync.Once
	want     []byte // Proof(secret, exporter); nil when it cannot be computed
}

// NewConnVerifier returns a verifier for the connection whose TLS exporter
// material exporter returns.
func NewConnVerifier(secret []byte, exporter func() ([]byte, error)) *ConnVerifier {
	return &ConnVerifier{secret: secret, exporter: exporter}
}

// Verify reports whether proof proves the secret on this connection.
func (v *ConnVerifier) Verify(proof []byte) bool {
	v.once.Do(func() {
		if exp, err := v.exporter(); err == nil && len(v.secret) > 0 {
			v.want = Proof(v.secret, exp)
		}
	})
	return v.want != nil && hmac.Equal(v.want, proof)
}
