package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aspen-dev/aspen/api"
	"github.com/aspen-dev/aspen/internal/blob"
	"github.com/aspen-dev/aspen/internal/ticket"
	"github.com/aspen-dev/aspen/internal/transport"
)

// BlobALPN is the protocol blob bytes travel on.
const BlobALPN = blob.ALPN

// blobConn dials the current peer on the blob protocol and returns the
// connection with a proof of the client credential bound to it.
func (c *Client) blobConn(ctx context.Context) (*transport.Conn, transport.NodeAddr, []byte, error) {
	target, _ := c.target()
	conn, err := c.ep.Dial(ctx, target, BlobALPN)
	if err != nil {
		return nil, target, nil, err
	}
	exp, err := conn.Exporter()
	if err != nil {
		return nil, target, nil, err
	}
	return conn, target, c.proofs.get(exp), nil
}

// BlobAdd streams the content of r to a node, which stores it, records it
// in the cluster and sets tags (full names, e.g. "user:keep"). Nodes are
// tried in turn until one is reached; once bytes were sent the add is not
// retried (r cannot be rewound). The result's hash is checked against the
// bytes sent.
func (c *Client) BlobAdd(ctx context.Context, r io.Reader, tags ...string) (*api.BlobAddResponse, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	var lastErr error
	for range len(c.peers) {
		conn, target, proof, err := c.blobConn(ctx)
		if err != nil {
			lastErr = fmt.Errorf("%s: %w", target, err)
			c.advance()
			continue
		}
		res, err := blob.Put(ctx, conn, proof, r, nil, tags)
		if err != nil {
			var ae *api.Error
			if errors.As(err, &ae) {
				return nil, ae
			}
			return nil, api.Errorf(api.CodeUnavailable, "blob add to %s: %v", target, err)
		}
		c.markGood(target)
		return &api.BlobAddResponse{IsSuccess: true, Hash: res.Hash.String(), SizeBytes: res.Size, WasNew: res.New}, nil
	}
	return nil, deadlineError("blob add", lastErr)
}

// BlobGet writes the blob named by hash (64 hex characters) to w and
// returns its size. Every 16 KiB group is verified against the hash before
// it is written. The answering node pulls the blob from a holder when it
// lacks it; if a node fails mid-transfer, the get resumes on the next node
// from the last verified byte. An unknown blob fails with NOT_FOUND.
func (c *Client) BlobGet(ctx context.Context, hash string, w io.Writer) (int64, error) {
	h, err := blob.ParseHash(hash)
	if err != nil {
		return 0, api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	return c.blobGet(ctx, blob.GetRequest{Hash: h, Length: -1}, w)
}

// blobGet runs req (to the end of the blob) against the client's nodes in
// turn, each attempt from the last verified byte, with the proof of the
// client's credential on that connection.
func (c *Client) blobGet(ctx context.Context, req blob.GetRequest, w io.Writer) (int64, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	cw := &countWriter{w: w}
	var lastErr error
	for range 2 * len(c.peers) {
		conn, target, proof, err := c.blobConn(ctx)
		if err == nil {
			var size int64
			req.Offset, req.Proof = cw.n, proof
			size, err = blob.Get(ctx, conn, req, cw)
			if err == nil {
				c.markGood(target)
				return size, nil
			}
		}
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code != api.CodeUnavailable {
			return 0, ae
		}
		if cw.werr != nil {
			return 0, err // the destination failed, not the node
		}
		lastErr = fmt.Errorf("%s: %w", target, err)
		c.advance()
		if ctx.Err() != nil {
			break
		}
	}
	return 0, deadlineError("blob get", lastErr)
}

// countWriter counts the bytes written and remembers a write error.
type countWriter struct {
	w    io.Writer
	n    int64
	werr error
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil {
		c.werr = err
	}
	return n, err
}

// BlobHas reports whether the cluster knows the blob.
func (c *Client) BlobHas(ctx context.Context, hash string) (*api.BlobHasResponse, error) {
	return call[api.BlobHasResponse](ctx, c, api.OpBlobHas, &api.BlobHashRequest{Hash: hash})
}

// BlobList returns one page of the blobs the cluster knows, in hash order.
func (c *Client) BlobList(ctx context.Context, req *api.BlobListRequest) (*api.BlobListResponse, error) {
	return call[api.BlobListResponse](ctx, c, api.OpBlobList, req)
}

// BlobStatus describes one blob: size, tags, holders.
func (c *Client) BlobStatus(ctx context.Context, hash string) (*api.BlobStatusResponse, error) {
	return call[api.BlobStatusResponse](ctx, c, api.OpBlobStatus, &api.BlobHashRequest{Hash: hash})
}

// BlobProtect sets the user tag on a blob.
func (c *Client) BlobProtect(ctx context.Context, hash, tag string) (*api.BlobTagResponse, error) {
	return call[api.BlobTagResponse](ctx, c, api.OpBlobProtect, &api.BlobProtectRequest{Hash: hash, Tag: tag})
}

// BlobUnprotect removes a user tag.
func (c *Client) BlobUnprotect(ctx context.Context, tag string) (*api.BlobTagResponse, error) {
	return call[api.BlobTagResponse](ctx, c, api.OpBlobUnprotect, &api.BlobUnprotectRequest{Tag: tag})
}

// BlobDelete drops the user tags of a blob; its bytes go with garbage
// collection.
func (c *Client) BlobDelete(ctx context.Context, hash string, force bool) (*api.BlobTagResponse, error) {
	return call[api.BlobTagResponse](ctx, c, api.OpBlobDelete, &api.BlobDeleteRequest{Hash: hash, Force: force})
}

// BlobReplicationStatus reports how many members hold a blob against the
// replication policy: healthy, degraded, under_replicated or critical.
func (c *Client) BlobReplicationStatus(ctx context.Context, hash string) (*api.BlobReplicationStatusResponse, error) {
	return call[api.BlobReplicationStatusResponse](ctx, c, api.OpBlobReplicationStatus, &api.BlobHashRequest{Hash: hash})
}

// BlobRepair has the leader copy a blob now until it has the replication
// factor (req's, else the policy's) of reachable holders.
func (c *Client) BlobRepair(ctx context.Context, req *api.BlobRepairRequest) (*api.BlobRepairResponse, error) {
	return call[api.BlobRepairResponse](ctx, c, api.OpBlobRepair, req)
}

// BlobRepairCycle starts a repair pass over every blob on the leader and
// returns at once.
func (c *Client) BlobRepairCycle(ctx context.Context) (*api.BlobRepairCycleResponse, error) {
	return call[api.BlobRepairCycleResponse](ctx, c, api.OpBlobRepairCycle, &struct{}{})
}

// BlobPolicy reads the replication and GC policy or, with req.Set,
// replaces it.
func (c *Client) BlobPolicy(ctx context.Context, req *api.BlobPolicyRequest) (*api.BlobPolicyResponse, error) {
	return call[api.BlobPolicyResponse](ctx, c, api.OpBlobPolicy, req)
}

// BlobTicket returns a blob ticket for hash: a string carrying the hash,
// the addresses of the nodes holding the blob and a capability to read
// that blob, and nothing else, for ttl (0: no expiry). Anyone holding it
// can fetch the blob (BlobDownload); it grants no other right on the
// cluster. It fails with NOT_FOUND when no member holds the blob.
func (c *Client) BlobTicket(ctx context.Context, hash string, ttl time.Duration) (string, error) {
	h, err := blob.ParseHash(hash)
	if err != nil {
		return "", api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	ttlMs := ttl.Milliseconds()
	if ttl > 0 && ttl%time.Millisecond != 0 {
		ttlMs++ // round up: a short positive lifetime must not become "never"
	}
	res, err := call[api.BlobTicketResponse](ctx, c, api.OpBlobTicket, &api.BlobTicketRequest{Hash: h.String(), TTLMs: ttlMs})
	if err != nil {
		return "", err
	}
	bt := blob.Ticket{Hash: h, ClusterID: res.ClusterID, ExpiresMs: res.ExpiresMs, Token: res.Token}
	for _, s := range res.Holders {
		a, err := transport.ParseNodeAddr(s)
		if err != nil {
			return "", fmt.Errorf("blob ticket: holder address %q: %w", s, err)
		}
		bt.Peers = append(bt.Peers, a)
	}
	return bt.String(), nil
}

// BlobDownload fetches the blob a blob ticket names from the nodes it
// lists, proving the ticket's read capability, verifying every group
// against the hash, and writes it to w. It returns the blob's hash and
// size. cfg.Ticket is ignored (the blob ticket names its nodes). An expired
// or invalid ticket fails with UNAUTHORIZED.
func BlobDownload(ctx context.Context, cfg Config, blobTicket string, w io.Writer) (string, int64, error) {
	bt, err := blob.ParseTicket(blobTicket)
	if err != nil {
		return "", 0, api.Errorf(api.CodeInvalidArgument, "%v", err)
	}
	// A client bound to the ticket's nodes whose secret is the capability
	// token: it proves the token on the blob protocol, and is refused
	// everything else.
	tk := ticket.Ticket{ClusterID: bt.ClusterID, Credential: bt.Token}
	for _, p := range bt.Peers {
		tk.Peers = append(tk.Peers, ticket.Peer{Key: p.Key, Addrs: p.Addrs})
	}
	cfg.Ticket = tk.String()
	c, err := New(cfg)
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	n, err := c.blobGet(ctx, blob.GetRequest{Hash: bt.Hash, Length: -1, ReadCap: true, ExpiresMs: bt.ExpiresMs}, w)
	return bt.Hash.String(), n, err
}
