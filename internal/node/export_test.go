package node

import (
	"context"
	"io"

	"github.com/aspen-dev/aspen/api"
)

// SetBlobSendFilter makes every blob get served by n write its stream
// through f (nil: directly), so a test can make a node tamper with what it
// serves while the receivers' verification stays the real one.
func (n *Node) SetBlobSendFilter(f func(io.Writer) io.Writer) {
	if f == nil {
		n.blobs.sendFilter.Store(nil)
		return
	}
	n.blobs.sendFilter.Store(&f)
}

// HookPublish calls n's hook.publish handler directly, as a node would
// through the RPC layer (clients are refused it).
func (n *Node) HookPublish(ctx context.Context, req *api.HookPublishRequest) (*api.HookPublishResponse, error) {
	return n.hooks.Load().publish(ctx, req)
}
