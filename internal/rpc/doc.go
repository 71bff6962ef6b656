// Package rpc owns Aspen's client protocol: the registry of named operations,
// the length-prefixed CBOR envelope, and serving and calling operations over
// QUIC streams.
//
// One operation is one bidirectional stream: the caller writes a Request frame
// and closes its side; the server writes a Response frame (and, for streaming
// operations, raw bytes after it) and closes. The same Registry serves every
// surface — QUIC clients, the HTTP/JSON gateway and forwarded calls from other
// nodes — so a handler is written once.
//
// The server checks each request's proof of the cluster's client credential,
// bounds frame sizes and read times, answers unknown operations with
// UNIMPLEMENTED, and hands NOT_LEADER failures of requests that were not
// already forwarded to a Forwarder, so followers forward to the leader exactly
// once.
package rpc
