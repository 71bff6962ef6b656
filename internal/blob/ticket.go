package blob

import (
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"

	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/transport"
)

// TicketPrefix starts every blob ticket.
const TicketPrefix = "aspenblob"

// Limits of a blob ticket.
const (
	maxTicket        = 64 << 10 // bytes of ticket text
	MaxTicketPeers   = 16       // nodes named by one ticket
	maxTicketCluster = 1 << 10  // bytes of the cluster ID
)

// ticketVersion is the format version written and read. Version 1 carried
// the client credential of the whole cluster; it is refused.
const ticketVersion = 2

// ErrBadTicket means a string is not a blob ticket.
var ErrBadTicket = errors.New("malformed blob ticket")

// Ticket is everything needed to fetch one blob, and nothing more: its
// hash, the nodes that hold it and a read capability for exactly that
// blob (ReadCapability), valid until ExpiresMs. It grants no other right
// on the cluster. Its text form is TicketPrefix followed by unpadded
// lowercase base32 of CBOR {v, hash, id, peers ["KEY@host:port", …],
// exp, token}, like cluster tickets.
type Ticket struct {
	Hash Hash
	// ClusterID names the cluster (auth.Keys.ClusterID), for display.
	ClusterID string
	// Peers are nodes holding the blob, 1..MaxTicketPeers.
	Peers []transport.NodeAddr
	// ExpiresMs is when the capability ends, in Unix milliseconds; 0 never.
	ExpiresMs int64
	// Token is ReadCapability(key, Hash, ExpiresMs).
	Token []byte
}

type wireTicket struct {
	Version   uint64   `cbor:"v"`
	Hash      []byte   `cbor:"hash"`
	ClusterID string   `cbor:"id"`
	Peers     []string `cbor:"peers"`
	ExpiresMs int64    `cbor:"exp,omitempty"`
	Token     []byte   `cbor:"token"`
}

// readScope is the auth.Capability scope of reading blob h.
func readScope(h Hash) string { return "blob.read:" + h.String() }

// ReadCapability is the token, signed with the cluster's capability key
// (auth.Keys.Capability), that admits a get of blob h, and of no other
// blob nor any other operation, until expiresMs (Unix ms; 0 never).
func ReadCapability(key []byte, h Hash, expiresMs int64) []byte {
	return auth.Capability(key, readScope(h), expiresMs)
}

var ticketEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// String encodes the ticket.
func (t Ticket) String() string {
	w := wireTicket{Version: ticketVersion, Hash: t.Hash[:], ClusterID: t.ClusterID, ExpiresMs: t.ExpiresMs, Token: t.Token}
	for _, p := range t.Peers {
		w.Peers = append(w.Peers, p.String())
	}
	// numbers, byte slices and strings always encode
	b, _ := cbor.Marshal(w)
	return TicketPrefix + strings.ToLower(ticketEncoding.EncodeToString(b))
}

// ParseTicket decodes a blob ticket; it fails with ErrBadTicket and says
// what is wrong.
func ParseTicket(s string) (Ticket, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxTicket || !strings.HasPrefix(s, TicketPrefix) {
		return Ticket{}, fmt.Errorf("%w: want %q followed by base32, at most %d bytes", ErrBadTicket, TicketPrefix, maxTicket)
	}
	b, err := ticketEncoding.DecodeString(strings.ToUpper(s[len(TicketPrefix):]))
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: %v", ErrBadTicket, err)
	}
	var w wireTicket
	if err := cbor.Unmarshal(b, &w); err != nil {
		return Ticket{}, fmt.Errorf("%w: %v", ErrBadTicket, err)
	}
	switch {
	case w.Version == 1:
		return Ticket{}, fmt.Errorf("%w: version 1 tickets carried the cluster credential and are no longer accepted; ask for a new ticket", ErrBadTicket)
	case w.Version != ticketVersion:
		return Ticket{}, fmt.Errorf("%w: version %d, this build reads %d", ErrBadTicket, w.Version, ticketVersion)
	case len(w.Hash) != len(Hash{}):
		return Ticket{}, fmt.Errorf("%w: hash of %d bytes, want %d", ErrBadTicket, len(w.Hash), len(Hash{}))
	case w.ClusterID == "" || len(w.ClusterID) > maxTicketCluster:
		return Ticket{}, fmt.Errorf("%w: cluster id must be 1..%d bytes", ErrBadTicket, maxTicketCluster)
	case len(w.Peers) == 0 || len(w.Peers) > MaxTicketPeers:
		return Ticket{}, fmt.Errorf("%w: %d nodes, want 1..%d", ErrBadTicket, len(w.Peers), MaxTicketPeers)
	case len(w.Token) != auth.ProofLen:
		return Ticket{}, fmt.Errorf("%w: token of %d bytes, want %d", ErrBadTicket, len(w.Token), auth.ProofLen)
	case w.ExpiresMs < 0:
		return Ticket{}, fmt.Errorf("%w: negative expiry", ErrBadTicket)
	}
	t := Ticket{ClusterID: w.ClusterID, ExpiresMs: w.ExpiresMs, Token: w.Token}
	copy(t.Hash[:], w.Hash)
	for i, p := range w.Peers {
		a, err := transport.ParseNodeAddr(p)
		if err != nil {
			return Ticket{}, fmt.Errorf("%w: node %d: %v", ErrBadTicket, i, err)
		}
		t.Peers = append(t.Peers, a)
	}
	return t, nil
}
