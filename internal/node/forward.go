package node

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/auth"
	"github.com/aspen-dev/aspen/internal/consensus"
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
	return n.callNode(ctx, to, req)
}

// callNode sends req to another node, proving the node secret: the callee
// serves node-only operations to it, and a client's request forwarded this
// way was authenticated (and refused node-only operations) by this node.
func (n *Node) callNode(ctx context.Context, to transport.NodeAddr, req *rpc.Request) (*rpc.Response, error) {
	conn, err := n.ep.Dial(ctx, to, ALPNClient)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", to, err)
	}
	exp, err := conn.Exporter()
	if err != nil {
		return nil, err
	}
	out := *req
	out.Auth = auth.Proof(n.keys.Node, exp)
	return rpc.Call(ctx, conn, &out)
}

// waitVotersKnow waits until every voter of the current configuration has
// itself learned that configuration (its own cluster.status lists the same
// voters). hashicorp/raft commits a membership change once a majority holds
// it; a voter that has not received it yet refuses the votes of the others
// as non-voters, so if the leader died just then the survivors could not
// elect a new one. Returning only after every voter knows closes that window
// for the common case.
func (n *Node) waitVotersKnow(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	servers, err := n.raft.Servers()
	if err != nil {
		return err
	}
	want := map[uint64]bool{}
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			want[consensus.ParseServerID(s.ID)] = true
		}
	}
	body, err := rpc.Marshal(&api.Empty{})
	if err != nil {
		return err
	}
	for _, s := range servers {
		id := consensus.ParseServerID(s.ID)
		to, err := transport.ParseNodeAddr(string(s.Address))
		if s.Suffrage != raft.Voter || id == n.cfg.NodeID || err != nil {
			continue
		}
		for {
			if knows, _ := n.nodeKnowsVoters(ctx, to, body, want); knows {
				break
			}
			select {
			case <-ctx.Done():
				return api.Errorf(api.CodeUnavailable, "membership changed, but voter %d has not learned it within 10s", id)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func (n *Node) nodeKnowsVoters(ctx context.Context, to transport.NodeAddr, body []byte, want map[uint64]bool) (bool, error) {
	resp, err := n.callNode(ctx, to, &rpc.Request{Op: api.OpClusterStatus, Body: body})
	if err != nil || resp.Error != nil {
		return false, err
	}
	var st api.StatusResponse
	if err := rpc.Unmarshal(resp.Body, &st); err != nil {
		return false, err
	}
	voters := 0
	for _, ns := range st.Nodes {
		if ns.IsVoter {
			if !want[ns.NodeID] {
				return false, nil
			}
			voters++
		}
	}
	return voters == len(want), nil
}
