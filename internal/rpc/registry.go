package rpc

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/aspen-dev/aspen/api"
)

// Registry maps operation names to handlers. Register everything before
// serving; after that it is read-only and safe for concurrent use.
type Registry struct {
	ops map[string]*entry
}

type entry struct {
	newReq  func() any
	newResp func() any // unary only
	// exactly one of call and stream is set
	call   func(ctx context.Context, req any) (any, error)
	stream func(ctx context.Context, req any, w io.Writer) error
	// nodeOnly operations answer only callers that prove the node secret
	// (other nodes of the cluster), never clients
	nodeOnly bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{ops: make(map[string]*entry)} }

// Handle registers a unary operation. It panics if op is registered twice,
// which is a programming error caught at start-up.
func Handle[Req, Resp any](r *Registry, op string, h func(context.Context, *Req) (*Resp, error)) {
	r.add(op, &entry{
		newReq:  func() any { return new(Req) },
		newResp: func() any { return new(Resp) },
		call: func(ctx context.Context, req any) (any, error) {
			resp, err := h(ctx, req.(*Req))
			if resp == nil {
				return nil, err // not a typed nil in an interface
			}
			return resp, err
		},
	})
}

// HandleStream registers an operation whose answer is a byte stream written
// to w after an empty success response.
func HandleStream[Req any](r *Registry, op string, h func(context.Context, *Req, io.Writer) error) {
	r.add(op, &entry{
		newReq: func() any { return new(Req) },
		stream: func(ctx context.Context, req any, w io.Writer) error {
			return h(ctx, req.(*Req), w)
		},
	})
}

func (r *Registry) add(op string, e *entry) {
	if _, dup := r.ops[op]; dup {
		panic(fmt.Sprintf("rpc: operation %q registered twice", op))
	}
	r.ops[op] = e
}

// NodeOnly reserves registered operations to the cluster's nodes: a
// client calling one is refused with UNAUTHORIZED. It panics if an
// operation is not registered, a programming error caught at start-up.
func (r *Registry) NodeOnly(ops ...string) {
	for _, op := range ops {
		e, ok := r.ops[op]
		if !ok {
			panic(fmt.Sprintf("rpc: NodeOnly(%q): not registered", op))
		}
		e.nodeOnly = true
	}
}

// Ops lists the registered operation names in order.
func (r *Registry) Ops() []string {
	names := make([]string, 0, len(r.ops))
	for n := range r.ops {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// lookup finds op for a caller; fromNode says it proved the node secret.
func (r *Registry) lookup(op string, fromNode bool) (*entry, error) {
	e, ok := r.ops[op]
	if !ok {
		return nil, api.Errorf(api.CodeUnimplemented, "unknown operation %q", op)
	}
	if e.nodeOnly && !fromNode {
		return nil, api.Errorf(api.CodeUnauthorized, "operation %q is reserved to the cluster's nodes", op)
	}
	return e, nil
}

// Invoke decodes body with decode into the operation's request type and
// calls a unary handler, for a client (node-only operations are refused),
// without forwarding (see Server.Invoke for that).
func (r *Registry) Invoke(ctx context.Context, op string, decode func(any) error) (any, error) {
	e, req, err := r.decodeUnary(op, decode)
	if err != nil {
		return nil, err
	}
	return e.call(ctx, req)
}

// decodeUnary finds a unary operation a client may call and decodes its
// request with decode.
func (r *Registry) decodeUnary(op string, decode func(any) error) (*entry, any, error) {
	e, err := r.lookup(op, false)
	if err != nil {
		return nil, nil, err
	}
	if e.call == nil {
		return nil, nil, api.Errorf(api.CodeUnimplemented, "operation %q streams its answer; use the native protocol", op)
	}
	req := e.newReq()
	if err := decode(req); err != nil {
		return nil, nil, api.Errorf(api.CodeInvalidArgument, "decoding %s request: %v", op, err)
	}
	return e, req, nil
}
