package node

import (
	"context"
	"fmt"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/rpc"
	"github.com/aspen-dev/aspen/internal/transport"
)

// forward sends a request that needs the leader to the leader, once (the
// request is marked forwarded so the leader never forwards it again).
func (n *Node) forward(ctx context.Context, req *rpc.Request) (*rpc.Response, error) {
	addr, _ := n.raft.Leader()
	if addr == "" {
		return nil, api.Errorf(api.CodeUnavailable, "no leader known")
	}
	to, err := transport.ParseNodeAddr(string(addr))
	if err != nil {
		return nil, fmt.Errorf("leader address %q: %w", addr, err)
	}
	if to.Key == n.self.Key {
		return nil, api.Errorf(api.CodeUnavailable, "this node is the leader")
	}
	conn, err := n.ep.Dial(ctx, to, ALPNClient)
	if err != nil {
		return nil, fmt.Errorf("dialing leader %s: %w", to, err)
	}
	exp, err := conn.Exporter()
	if err != nil {
		return nil, err
	}
	fwd := *req
	fwd.Auth = auth.Proof(n.keys.Client, exp)
	return rpc.Call(ctx, conn, &fwd)
}
