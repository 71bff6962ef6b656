package transport

import (
	"errors"
	"fmt"
)

// Faults decides whether traffic between two nodes may flow. It exists for
// fault-injection tests (package faults implements it); production endpoints
// leave Config.Faults nil and never consult it.
//
// Allow reports whether from may send to to on alpn now. The endpoint asks
// it before each dial (self → peer), for each accepted connection
// (peer → self), for each stream opened or accepted on a connection, and,
// on raft streams, for each Write (self → peer) and each Read that returned
// data (peer → self). A false answer fails the dial, closes the accepted
// connection, or resets the stream. Allow is called concurrently from many
// goroutines; it may sleep briefly to inject delay, since it runs on the
// goroutine about to send or receive.
type Faults interface {
	Allow(from, to PublicKey, alpn string) bool
}

// ErrFaultInjected is returned (wrapped) when Faults refused traffic.
var ErrFaultInjected = errors.New("refused by injected network fault")

func faultError(from, to PublicKey, alpn string) error {
	return fmt.Errorf("%s -> %s (%s): %w", from, to, alpn, ErrFaultInjected)
}

// CloseConns closes every connection, dialed or accepted, between this
// endpoint and peer, and reports how many it closed. Fault injection uses it
// when a partition starts, so long-lived connections do not outlive it.
func (e *Endpoint) CloseConns(peer PublicKey) int {
	e.mu.Lock()
	var conns []*Conn
	for k, ent := range e.dialed {
		if k.key != peer {
			continue
		}
		select {
		case <-ent.done:
			if ent.conn != nil {
				conns = append(conns, ent.conn)
			}
			delete(e.dialed, k)
		default: // a dial in progress will be refused by Faults on first use
		}
	}
	for c := range e.accepted {
		if c.peer == peer {
			conns = append(conns, c)
		}
	}
	e.mu.Unlock()
	for _, c := range conns {
		_ = c.Close(0, "injected partition")
	}
	return len(conns)
}
