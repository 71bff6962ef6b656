package transport

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// MaxAddrs is the largest number of socket addresses a NodeAddr may carry.
const MaxAddrs = 8

// PublicKey is a node's Ed25519 public key, which is also its node ID.
type PublicKey [ed25519.PublicKeySize]byte

// ParsePublicKey parses the 64-character hex form produced by
// PublicKey.String. Upper-case hex is accepted.
func ParsePublicKey(s string) (PublicKey, error) {
	var pk PublicKey
	if len(s) != 2*len(pk) {
		return PublicKey{}, fmt.Errorf("parse node key %q: want %d hex characters, got %d", truncate(s), 2*len(pk), len(s))
	}
	if _, err := hex.Decode(pk[:], []byte(s)); err != nil {
		return PublicKey{}, fmt.Errorf("parse node key %q: not hex: %w", truncate(s), err)
	}
	return pk, nil
}

// String returns the key as 64 lowercase hex characters.
func (k PublicKey) String() string { return hex.EncodeToString(k[:]) }

// IsZero reports whether k is the all-zero key, which never names a node.
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// NodeAddr is how a node is reached: its key, which the dialer pins, and the
// "host:port" socket addresses to try, in order. Host may be an IP literal
// (IPv6 in brackets) or a DNS name.
//
// Its text form is "<hex key>@host:port[,host:port...]"; see ParseNodeAddr.
type NodeAddr struct {
	Key   PublicKey
	Addrs []string
}

// ParseNodeAddr parses "<hex key>@host:port[,host:port...]". Surrounding
// white space is ignored. It fails when the '@' is missing, the key is not 64
// hex characters, there are no addresses or more than MaxAddrs, or an address
// is not host:port with a port in 1..65535.
func ParseNodeAddr(s string) (NodeAddr, error) {
	s = strings.TrimSpace(s)
	keyText, addrText, ok := strings.Cut(s, "@")
	if !ok {
		return NodeAddr{}, fmt.Errorf("parse node address %q: expected KEY@HOST:PORT", truncate(s))
	}
	key, err := ParsePublicKey(keyText)
	if err != nil {
		return NodeAddr{}, fmt.Errorf("parse node address: %w", err)
	}
	a := NodeAddr{Key: key}
	if addrText != "" {
		for _, hp := range strings.Split(addrText, ",") {
			a.Addrs = append(a.Addrs, strings.TrimSpace(hp))
			if len(a.Addrs) > MaxAddrs {
				break
			}
		}
	}
	if err := a.Validate(); err != nil {
		return NodeAddr{}, fmt.Errorf("parse node address %q: %w", truncate(s), err)
	}
	return a, nil
}

// Validate checks that a has a non-zero key and 1..MaxAddrs well-formed
// "host:port" addresses with ports in 1..65535.
func (a NodeAddr) Validate() error {
	if a.Key.IsZero() {
		return errors.New("node key is all zeros")
	}
	if len(a.Addrs) == 0 {
		return errors.New("no addresses after '@' (expected KEY@HOST:PORT)")
	}
	if len(a.Addrs) > MaxAddrs {
		return fmt.Errorf("more than %d addresses", MaxAddrs)
	}
	for _, hp := range a.Addrs {
		if err := checkHostPort(hp); err != nil {
			return err
		}
	}
	return nil
}

// String returns the text form "<hex key>@host:port[,host:port...]".
func (a NodeAddr) String() string {
	return a.Key.String() + "@" + strings.Join(a.Addrs, ",")
}

func checkHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("address %q is not host:port: %w", truncate(hp), err)
	}
	if host == "" {
		return fmt.Errorf("address %q has an empty host", hp)
	}
	if strings.ContainsAny(host, " \t\r\n@,/") {
		return fmt.Errorf("address %q has an invalid host", truncate(hp))
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("address %q: port must be a number in 1..65535", truncate(hp))
	}
	if n == 0 {
		return fmt.Errorf("address %q: port 0 cannot be dialed", hp)
	}
	return nil
}

// truncate shortens user input quoted in error messages.
func truncate(s string) string {
	const max = 100
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
