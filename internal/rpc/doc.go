// Package rpc owns Aspen's client protocol: the registry of named operations,
// the length-prefixed CBOR envelope, and serving and calling operations over
// QUIC streams.
//
// A bidirectional stream carries one call at a time: the caller writes a
// Request frame, the server a Response frame. Unary calls reuse streams: after
// the answer the caller may write the next request on the same stream or
// close it; the server ends a stream cleanly only between calls (after
// IdleTimeout, or when the caller closed it), so a caller that sees a clean
// end before any answer resends on a new stream. A streaming operation ends
// its stream: the caller closes its side after the request, the server writes
// the Response frame, raw bytes, and closes. The same Registry serves every
// surface — QUIC clients, the HTTP/JSON gateway and forwarded calls from other
// nodes — so a handler is written once.
//
// The server checks each request's proof of the cluster's client credential,
// bounds frame sizes and read times, answers unknown operations with
// UNIMPLEMENTED, and hands NOT_LEADER failures of requests that were not
// already forwarded to a Forwarder, so followers forward to the leader exactly
// once.
package rpc
