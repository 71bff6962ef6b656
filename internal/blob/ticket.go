package blob

import (
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// TicketPrefix starts every blob ticket.
const TicketPrefix = "aspenblob"

// maxTicket bounds the text of a blob ticket, in bytes.
const maxTicket = 64 << 10

// ErrBadTicket means a string is not a blob ticket.
var ErrBadTicket = errors.New("malformed blob ticket")

// Ticket is everything needed to fetch one blob: its hash and a cluster
// ticket (cluster ID, the nodes holding the blob, the client credential).
// Its text form is TicketPrefix followed by unpadded lowercase base32 of
// CBOR, like cluster tickets.
type Ticket struct {
	Hash Hash
	// Cluster is a cluster ticket ("aspen…") whose peers hold the blob.
	Cluster string
}

type wireTicket struct {
	Version uint64 `cbor:"v"`
	Hash    []byte `cbor:"hash"`
	Cluster string `cbor:"cluster"`
}

var ticketEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// String encodes the ticket.
func (t Ticket) String() string {
	// a struct of a number, a byte slice and a string always encodes
	b, _ := cbor.Marshal(wireTicket{Version: 1, Hash: t.Hash[:], Cluster: t.Cluster})
	return TicketPrefix + strings.ToLower(ticketEncoding.EncodeToString(b))
}

// ParseTicket decodes a blob ticket; it fails with ErrBadTicket.
func ParseTicket(s string) (Ticket, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxTicket || !strings.HasPrefix(s, TicketPrefix) {
		return Ticket{}, fmt.Errorf("%w: want %q followed by base32", ErrBadTicket, TicketPrefix)
	}
	b, err := ticketEncoding.DecodeString(strings.ToUpper(s[len(TicketPrefix):]))
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: %v", ErrBadTicket, err)
	}
	var w wireTicket
	if err := cbor.Unmarshal(b, &w); err != nil {
		return Ticket{}, fmt.Errorf("%w: %v", ErrBadTicket, err)
	}
	if w.Version != 1 {
		return Ticket{}, fmt.Errorf("%w: version %d, want 1", ErrBadTicket, w.Version)
	}
	var t Ticket
	if len(w.Hash) != len(t.Hash) || w.Cluster == "" {
		return Ticket{}, fmt.Errorf("%w: missing hash or cluster", ErrBadTicket)
	}
	copy(t.Hash[:], w.Hash)
	t.Cluster = w.Cluster
	return t, nil
}
