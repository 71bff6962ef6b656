package node

import (
	"fmt"

	"github.com/aspen-dev/aspen/internal/hooks"
)

// Subscribe registers fn as the in-process hook handler name for the
// events whose subjects match pattern (NATS-style: "hooks.kv.*",
// "kv.put.users.>", ">"; see package hooks). It returns a function that
// removes the subscription.
//
// Events are fired by the leader only, so fn runs on this node while it
// leads: an application embedding Aspen subscribes on every node with the
// same name and pattern, and each event then reaches exactly one of them
// (see package hooks for the guarantees across a failover; ev.ID is the
// key to de-duplicate on). Node events (snapshots, health, blobs) are
// recorded only when the node that observes them has a matching handler:
// to receive those of a node that restarts, also store a handler of type
// in_process with the same name and pattern (hook.add), which every node
// sees from the moment it starts. fn runs in a goroutine of the hook loop, with
// ctx bounded by the default timeout (5 s) and cancelled if this node stops
// leading; a non-nil error is retried (3 times, backoff from 100 ms). The
// loop waits for fn before the next event, so fn should be quick. A
// handler stored in the cluster with type in_process and the same name
// uses fn too. A second Subscribe with the same name replaces the first.
func (n *Node) Subscribe(name, pattern string, fn hooks.Func) (unsubscribe func(), err error) {
	s := n.hooks.Load()
	if s == nil {
		return nil, fmt.Errorf("subscribing %q: the hook service is not running", name)
	}
	if err := s.d.Subscribe(name, pattern, fn); err != nil {
		return nil, fmt.Errorf("subscribing %q: %w", name, err)
	}
	return func() { s.d.Unsubscribe(name) }, nil
}
