// Package hooks owns Aspen's event hooks: event types and their subjects,
// NATS-style subject patterns, handler configuration and its limits, and
// the Dispatcher that delivers an event to the matching handlers
// (in-process Go functions, shell commands and signed webhooks) with
// timeouts, retries and per-handler counters.
//
// # Subjects
//
// Every event has a type (the snake_case names of spec 05, such as
// write_committed) and is published on its topic "hooks.<category>.<type>"
// (hooks.kv.write_committed, hooks.cluster.leader_elected). KV events are
// also published on a key subject: "kv.put.<key>" or "kv.delete.<key>",
// the key split on '/' and ':' into segments (see KeySubject). A handler
// fires once for an event when its pattern matches any of its subjects.
//
// # Patterns
//
// Dot-separated segments of letters, digits, '-' and '_'; '*' matches one
// segment; '>', last only, matches zero or more trailing segments. At most
// 256 bytes. "hooks.kv.*" matches hooks.kv.write_committed but not
// hooks.kv.a.b; "kv.put.users.>" matches every put under users/.
//
// # Delivery
//
// Each matching handler runs in its own goroutine; an attempt is bounded by
// the handler's timeout (default 5 s, at most 30 s), a failed attempt is
// retried retry_count times (default 3, at most 5) after 100 ms, doubling up
// to 10 s. Shell handlers run "sh -c COMMAND" with the event JSON on stdin
// and in $ASPEN_HOOK_EVENT (also $ASPEN_EVENT_JSON), the topic in
// $ASPEN_HOOK_TOPIC, the most specific subject in $ASPEN_EVENT_SUBJECT
// (kv.put.users.42 for a KV event, else the topic) and the type in
// $ASPEN_HOOK_EVENT_TYPE; a non-zero exit fails the attempt; output is
// capped at 64 KiB. Webhooks POST the event JSON; a 2xx answer succeeds;
// with a secret the body is signed in X-Aspen-Signature:
// sha256=<hex HMAC-SHA256(secret, body)> (receivers check it with Verify).
//
// Which node fires which event, and the cursor that makes a new leader
// continue where the old one stopped, are the node's business: see
// internal/node/hooks.go.
package hooks
