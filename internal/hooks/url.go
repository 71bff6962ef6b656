package hooks

import (
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/ticket"
)

// URLPrefix starts every hook URL.
const URLPrefix = "aspenhook"

// Limits of a hook URL.
const (
	MaxURLPeers = 16
	TokenSize   = 32
	maxURLInput = 16 << 10
)

// CoreEventTypes are the event types a hook URL may fire.
var CoreEventTypes = []string{
	"write_committed", "delete_committed", "membership_changed", "leader_elected", "snapshot_created",
	"snapshot_installed", "health_changed", "node_added", "node_removed", "ttl_expired",
}

// IsCoreEventType reports whether t is one of CoreEventTypes.
func IsCoreEventType(t string) bool {
	for _, c := range CoreEventTypes {
		if c == t {
			return true
		}
	}
	return false
}

// ErrExpired is returned by URL.Check for a URL past its expiry.
var ErrExpired = errors.New("hook URL expired")

// URL is a decoded hook URL: "aspenhook" followed by the lowercase,
// unpadded base32 of a CBOR map. The token authorizes firing EventType on
// the cluster (the cluster stores a hash of it, with the expiry); the rest
// tells the caller where to go. Expires is unix seconds (0 = never).
type URL struct {
	ClusterID string        `cbor:"id"`
	Peers     []ticket.Peer `cbor:"-"`
	EventType string        `cbor:"ev"`
	Payload   []byte        `cbor:"pl,omitempty"`
	Token     []byte        `cbor:"tok"`
	Expires   int64         `cbor:"exp,omitempty"`
	Relay     string        `cbor:"relay,omitempty"`
}

type wirePeer struct {
	Key   []byte   `cbor:"key"`
	Addrs []string `cbor:"addrs"`
}

type wireURL struct {
	URL
	WirePeers []wirePeer `cbor:"peers"`
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Check validates the fields of u; an expired URL (at now) is ErrExpired.
func (u *URL) Check(now time.Time) error {
	switch {
	case u.ClusterID == "":
		return errors.New("hook URL: no cluster id")
	case len(u.Peers) == 0 || len(u.Peers) > MaxURLPeers:
		return fmt.Errorf("hook URL: %d peers; want 1..%d", len(u.Peers), MaxURLPeers)
	case !IsCoreEventType(u.EventType):
		return fmt.Errorf("hook URL: event type %q is not one of the core types (%s)", u.EventType, strings.Join(CoreEventTypes, ", "))
	case len(u.Payload) > api.MaxHookPayloadSize:
		return fmt.Errorf("hook URL: payload is %d bytes; the limit is %d", len(u.Payload), api.MaxHookPayloadSize)
	case len(u.Payload) > 0 && !json.Valid(u.Payload):
		return errors.New("hook URL: payload is not valid JSON")
	case len(u.Token) != TokenSize:
		return fmt.Errorf("hook URL: token is %d bytes; want %d", len(u.Token), TokenSize)
	case u.Expires < 0:
		return errors.New("hook URL: negative expiry")
	case u.Expires != 0 && now.Unix() >= u.Expires:
		return fmt.Errorf("%w at %s", ErrExpired, time.Unix(u.Expires, 0).UTC().Format(time.RFC3339))
	}
	for i, p := range u.Peers {
		if len(p.Addrs) == 0 {
			return fmt.Errorf("hook URL: peer %d has no address", i)
		}
	}
	return nil
}

// String encodes u.
func (u *URL) String() string {
	w := wireURL{URL: *u}
	for _, p := range u.Peers {
		w.WirePeers = append(w.WirePeers, wirePeer{Key: p.Key[:], Addrs: p.Addrs})
	}
	b, err := cbor.Marshal(w)
	if err != nil {
		return ""
	}
	return URLPrefix + strings.ToLower(b32.EncodeToString(b))
}

// ParseURL decodes and checks a hook URL at now.
func ParseURL(s string, now time.Time) (*URL, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxURLInput {
		return nil, fmt.Errorf("hook URL is %d bytes; the limit is %d", len(s), maxURLInput)
	}
	body, ok := strings.CutPrefix(s, URLPrefix)
	if !ok {
		return nil, fmt.Errorf("hook URL does not start with %q", URLPrefix)
	}
	raw, err := b32.DecodeString(strings.ToUpper(body))
	if err != nil {
		return nil, fmt.Errorf("hook URL: bad base32: %w", err)
	}
	var w wireURL
	if err := cbor.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("hook URL: bad CBOR: %w", err)
	}
	u := w.URL
	if len(w.WirePeers) > MaxURLPeers {
		return nil, fmt.Errorf("hook URL: %d peers; the limit is %d", len(w.WirePeers), MaxURLPeers)
	}
	for i, p := range w.WirePeers {
		var tp ticket.Peer
		if len(p.Key) != len(tp.Key) {
			return nil, fmt.Errorf("hook URL: peer %d key is %d bytes", i, len(p.Key))
		}
		copy(tp.Key[:], p.Key)
		tp.Addrs = p.Addrs
		u.Peers = append(u.Peers, tp)
	}
	if err := u.Check(now); err != nil {
		return nil, err
	}
	return &u, nil
}
