// Package api defines the request and response types of Aspen's client protocol
// and its closed set of error codes.
//
// Every operation is named ("kv.get", "cluster.init", ...) and carries one request
// struct and one response struct from this package, encoded as CBOR on the wire
// (see internal/rpc). The same types are used by the Go client, the CLI, the HTTP
// gateway and, for transactions, the replicated Raft log, so their CBOR field names
// are part of the storage format: add fields, never renumber or rename them.
package api
