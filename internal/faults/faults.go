// Package faults injects network faults into in-process Aspen nodes for
// tests: symmetric and one-way partitions, random loss of streams and
// messages, and delay, all switchable while the cluster runs.
//
// A Network implements transport.Faults. Give the same Network to every
// node of a test cluster (node.Config.Faults); it then decides, per pair of
// node keys, whether traffic may flow. Changing the rules does not by itself
// break connections that are already open: the caller (clustertest) closes
// the connections between newly separated nodes with
// transport.Endpoint.CloseConns, and the endpoint consults the Network on
// every new dial, stream and raft message after that.
//
// Loss and delay apply to node-to-node traffic of every ALPN: raft streams
// and messages, forwarded client calls, and client calls accepted by a node.
// Clients' own endpoints carry no Network, so a client's outgoing traffic is
// only affected on the node side.
package faults

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aspen-dev/aspen/internal/transport"
)

var _ transport.Faults = (*Network)(nil)

type link struct{ from, to transport.PublicKey }

// Network is a set of fault rules over node keys. The zero value is not
// usable; call New. All methods are safe for concurrent use.
type Network struct {
	mu      sync.Mutex // guards the fields below; never held while sleeping
	rng     *rand.Rand
	blocked map[link]bool
	loss    float64       // probability that one check fails
	delay   time.Duration // fixed delay added to every check
	jitter  time.Duration // plus a uniform random delay in [0, jitter)
	refused uint64        // checks answered false, for reports
}

// New returns a Network with no faults whose random choices (loss, jitter)
// derive from seed.
func New(seed uint64) *Network {
	return &Network{
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		blocked: make(map[link]bool),
	}
}

// Allow implements transport.Faults.
func (n *Network) Allow(from, to transport.PublicKey, alpn string) bool {
	n.mu.Lock()
	if n.blocked[link{from, to}] {
		n.refused++
		n.mu.Unlock()
		return false
	}
	if n.loss > 0 && n.rng.Float64() < n.loss {
		n.refused++
		n.mu.Unlock()
		return false
	}
	d := n.delay
	if n.jitter > 0 {
		d += time.Duration(n.rng.Int64N(int64(n.jitter)))
	}
	n.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
	return true
}

// Block cuts traffic from → to only (a one-way partition).
func (n *Network) Block(from, to transport.PublicKey) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocked[link{from, to}] = true
}

// Unblock restores traffic from → to.
func (n *Network) Unblock(from, to transport.PublicKey) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.blocked, link{from, to})
}

// Partition replaces the partition rules with groups: nodes in different
// groups cannot reach each other in either direction; nodes in the same
// group, and nodes named in no group, are not cut from each other. A node
// named in no group is cut from every node that is.
func (n *Network) Partition(groups ...[]transport.PublicKey) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocked = make(map[link]bool)
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					n.blocked[link{a, b}] = true
				}
			}
		}
	}
}

// Heal removes every partition and one-way block. Loss and delay stay.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.blocked = make(map[link]bool)
}

// SetLoss makes each check fail with probability p (0 ≤ p ≤ 1): a dial
// fails, a stream is reset, a raft message is lost with its stream.
func (n *Network) SetLoss(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.loss = min(max(p, 0), 1)
}

// SetDelay adds d plus a uniform random [0, jitter) to every check that
// passes; zero values remove the delay.
func (n *Network) SetDelay(d, jitter time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delay, n.jitter = max(d, 0), max(jitter, 0)
}

// Reset removes every fault: partitions, blocks, loss and delay.
func (n *Network) Reset() {
	n.Heal()
	n.SetLoss(0)
	n.SetDelay(0, 0)
}

// Blocked reports whether traffic from → to is cut by a partition or block.
func (n *Network) Blocked(from, to transport.PublicKey) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.blocked[link{from, to}]
}

// Refused is the number of checks answered false so far.
func (n *Network) Refused() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.refused
}

// String describes the current rules, for logs.
func (n *Network) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var cuts []string
	for l := range n.blocked {
		cuts = append(cuts, fmt.Sprintf("%.8s->%.8s", l.from.String(), l.to.String()))
	}
	sort.Strings(cuts)
	return fmt.Sprintf("blocked=[%s] loss=%.2f delay=%v+%v", strings.Join(cuts, " "), n.loss, n.delay, n.jitter)
}
