// Package ticket owns cluster tickets: the single copy-pasteable string that
// tells a client or a joining node which cluster to reach, through which
// nodes, and with which client credential.
//
// # Format
//
// A ticket is "aspen" followed by the lowercase, unpadded RFC 4648 base32
// encoding of a CBOR map encoded with the deterministic Core rules, so a
// given Ticket always produces the same string. The map has text keys:
//
//	"v"     unsigned  format version, always 1
//	"id"    text      cluster ID (auth.Keys.ClusterID)
//	"peers" array     1..16 bootstrap nodes, each a map:
//	          "key"   bytes  32-byte Ed25519 node key
//	          "addrs" array  1..8 "host:port" text strings
//	"cred"  bytes     client credential (auth.Keys.Client)
//
// Unknown map keys are ignored so later versions can add optional fields;
// an incompatible change bumps "v". A ticket carries the client credential,
// never the cookie or the node secret, so it does not let its holder act as
// a node.
package ticket

import (
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"

	"github.com/aspen-dev/aspen/internal/transport"
)

// Prefix starts every ticket.
const Prefix = "aspen"

// Limits enforced by Parse and Validate.
const (
	MaxInput         = 64 << 10 // bytes of ticket text
	MaxPeers         = 16
	MaxAddrsPerPeer  = transport.MaxAddrs
	MaxClusterIDLen  = 1 << 10 // bytes
	MaxCredentialLen = 1 << 10 // bytes
)

// version is the only format version this package reads and writes.
const version = 1

// Errors returned by Parse, matched with errors.Is.
var (
	// ErrFormat means the text is not a ticket at all: wrong prefix, bad
	// base32, bad CBOR or too long.
	ErrFormat = errors.New("malformed ticket")
	// ErrInvalid means the ticket decoded but its content is unusable.
	ErrInvalid = errors.New("invalid ticket")
)

// Peer is a bootstrap node named in a ticket.
type Peer struct {
	Key   transport.PublicKey
	Addrs []string // "host:port"
}

// NodeAddr returns the peer as a dialable address.
func (p Peer) NodeAddr() transport.NodeAddr {
	return transport.NodeAddr{Key: p.Key, Addrs: p.Addrs}
}

// Ticket is everything needed to reach a cluster.
type Ticket struct {
	ClusterID  string
	Peers      []Peer
	Credential []byte // auth.Keys.Client
}

// wireTicket and wirePeer are the CBOR layout; see the package comment.
type wireTicket struct {
	Version    uint64     `cbor:"v"`
	ClusterID  string     `cbor:"id"`
	Peers      []wirePeer `cbor:"peers"`
	Credential []byte     `cbor:"cred"`
}

type wirePeer struct {
	Key   []byte   `cbor:"key"`
	Addrs []string `cbor:"addrs"`
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// CBOR modes are built once, on first use; their options are constant, so
// an error would be a programming mistake, reported by every call.
var (
	encMode = sync.OnceValues(func() (cbor.EncMode, error) {
		return cbor.CoreDetEncOptions().EncMode()
	})
	decMode = sync.OnceValues(func() (cbor.DecMode, error) {
		return cbor.DecOptions{
			DupMapKey:         cbor.DupMapKeyEnforcedAPF,
			MaxNestedLevels:   8,
			MaxArrayElements:  1024,
			MaxMapPairs:       64,
			IndefLength:       cbor.IndefLengthForbidden,
			TagsMd:            cbor.TagsForbidden,
			FieldNameMatching: cbor.FieldNameMatchingCaseSensitive,
		}.DecMode()
	})
)

// String encodes t. It does not validate t; call Validate first when t was
// not built from trusted values.
func (t Ticket) String() string {
	w := wireTicket{Version: version, ClusterID: t.ClusterID, Credential: t.Credential}
	for _, p := range t.Peers {
		w.Peers = append(w.Peers, wirePeer{Key: p.Key[:], Addrs: p.Addrs})
	}
	em, err := encMode()
	if err != nil {
		return ""
	}
	b, err := em.Marshal(w)
	if err != nil { // strings, byte slices and arrays always encode
		return ""
	}
	return Prefix + strings.ToLower(b32.EncodeToString(b))
}

// Parse decodes a ticket produced by Ticket.String. Surrounding white space is
// ignored and the base32 part may be in either case. Errors wrap ErrFormat or
// ErrInvalid and say what is wrong.
func Parse(s string) (Ticket, error) {
	if len(s) > MaxInput {
		return Ticket{}, fmt.Errorf("parse ticket: %w: %d bytes, limit %d", ErrFormat, len(s), MaxInput)
	}
	s = strings.TrimSpace(s)
	body, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return Ticket{}, fmt.Errorf("parse ticket: %w: does not start with %q", ErrFormat, Prefix)
	}
	raw, err := b32.DecodeString(strings.ToUpper(body))
	if err != nil {
		return Ticket{}, fmt.Errorf("parse ticket: %w: bad base32: %w", ErrFormat, err)
	}
	dm, err := decMode()
	if err != nil {
		return Ticket{}, fmt.Errorf("parse ticket: cbor decoder: %w", err)
	}
	var w wireTicket
	if err := dm.Unmarshal(raw, &w); err != nil {
		return Ticket{}, fmt.Errorf("parse ticket: %w: bad CBOR: %w", ErrFormat, err)
	}
	if w.Version != version {
		return Ticket{}, fmt.Errorf("parse ticket: %w: version %d, this build reads version %d", ErrInvalid, w.Version, version)
	}
	t := Ticket{ClusterID: w.ClusterID, Credential: w.Credential}
	if len(w.Peers) > MaxPeers {
		return Ticket{}, fmt.Errorf("parse ticket: %w: %d peers, limit %d", ErrInvalid, len(w.Peers), MaxPeers)
	}
	for i, wp := range w.Peers {
		var p Peer
		if len(wp.Key) != len(p.Key) {
			return Ticket{}, fmt.Errorf("parse ticket: %w: peer %d: key has %d bytes, want %d", ErrInvalid, i, len(wp.Key), len(p.Key))
		}
		copy(p.Key[:], wp.Key)
		p.Addrs = wp.Addrs
		t.Peers = append(t.Peers, p)
	}
	if err := t.Validate(); err != nil {
		return Ticket{}, fmt.Errorf("parse ticket: %w", err)
	}
	return t, nil
}

// Validate checks the limits Parse enforces: a cluster ID of 1..MaxClusterIDLen
// bytes, 1..MaxPeers peers each with a non-zero key and 1..MaxAddrsPerPeer
// valid "host:port" addresses, and a credential of 1..MaxCredentialLen bytes.
// Errors wrap ErrInvalid.
func (t Ticket) Validate() error {
	switch {
	case t.ClusterID == "":
		return fmt.Errorf("%w: missing cluster id", ErrInvalid)
	case len(t.ClusterID) > MaxClusterIDLen:
		return fmt.Errorf("%w: cluster id is %d bytes, limit %d", ErrInvalid, len(t.ClusterID), MaxClusterIDLen)
	case len(t.Peers) == 0:
		return fmt.Errorf("%w: no peers", ErrInvalid)
	case len(t.Peers) > MaxPeers:
		return fmt.Errorf("%w: %d peers, limit %d", ErrInvalid, len(t.Peers), MaxPeers)
	case len(t.Credential) == 0:
		return fmt.Errorf("%w: missing credential", ErrInvalid)
	case len(t.Credential) > MaxCredentialLen:
		return fmt.Errorf("%w: credential is %d bytes, limit %d", ErrInvalid, len(t.Credential), MaxCredentialLen)
	}
	for i, p := range t.Peers {
		if len(p.Addrs) > MaxAddrsPerPeer {
			return fmt.Errorf("%w: peer %d (%s): %d addresses, limit %d", ErrInvalid, i, p.Key, len(p.Addrs), MaxAddrsPerPeer)
		}
		if err := p.NodeAddr().Validate(); err != nil {
			return fmt.Errorf("%w: peer %d (%s): %w", ErrInvalid, i, p.Key, err)
		}
	}
	return nil
}
