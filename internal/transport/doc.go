// Package transport owns the node's network endpoint: one UDP socket running
// QUIC, Ed25519 node identities, mutually authenticated TLS 1.3 and routing of
// connections to protocol handlers by ALPN.
//
// # Identity
//
// A node is named by its Ed25519 public key (PublicKey, printed as 64
// lowercase hex characters). Both sides of every connection present a
// self-signed certificate over their key; the dialer pins the key it expects
// and the listener learns the dialer's key from its certificate. Conn.Peer
// always returns a key that the remote side proved it holds. Certificates are
// not checked against any CA and their validity dates are ignored: the key is
// the identity.
//
// Authorisation (is this key a cluster member, does it know the cookie) is
// not done here; protocol layers do it with Conn.Peer and Conn.Exporter (see
// package auth and StreamLayer).
//
// # Addresses
//
// NodeAddr is a key plus one or more "host:port" socket addresses. Its text
// form, accepted by ParseNodeAddr and produced by NodeAddr.String, is
//
//	<64 hex chars>@host:port[,host:port...]
//
// for example
//
//	3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29@10.0.0.5:7400,[fd00::5]:7400
//
// # Goroutines
//
// An Endpoint owns every goroutine it starts: the accept loop and one
// goroutine per accepted connection running that ALPN's handler. Close
// cancels the handlers' context, closes every connection and waits for those
// goroutines, so a handler must return once its context is done or its
// connection is closed.
package transport
