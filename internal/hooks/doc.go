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
// Shell handlers also find the event's ID in $ASPEN_HOOK_EVENT_ID and
// webhooks in the X-Aspen-Event-Id header (see below).
//
// # Guarantees
//
// The node (internal/node/hooks*.go) feeds the Dispatcher from the
// replicated change history. Every event that is not synthetic is first
// recorded there: KV writes and deletes by their own commands; the other
// node events (leader_elected, node_added, node_removed,
// membership_changed, snapshot_created, snapshot_installed,
// health_changed and the blob_* events) by a write to the reserved outbox
// keys, made through the leader by the node that observed them. The
// leader reads the history in revision order and fires its events one at
// a time; after each event that reached a handler it stores a cursor (the
// event's ID) with a compare-and-swap on the cursor's mod_revision. So:
//
//   - Each event is fired by exactly one node: the leader. A deposed
//     leader cancels its in-flight deliveries as soon as Raft tells it (it
//     checks every 25 ms; hashicorp/raft steps a leader without a quorum
//     down after the lease timeout, before another can be elected), and
//     its next cursor write fails the compare-and-swap if a newer leader
//     wrote one, so it never fires past that point.
//   - With no leader crash, every event is delivered exactly once per
//     matching handler, in history order (handlers run in parallel with
//     each other, but a handler never sees event N+1 before event N has
//     finished, retries included).
//   - Across a leader crash or deposition, the new leader resumes after
//     the stored cursor: only the event in flight at that instant (fired,
//     its cursor write not committed) is delivered again, with the same
//     ID. Receivers that must not act twice de-duplicate on the ID:
//     "<revision>-<index>" — the Raft log index that recorded the event
//     and its position among that command's events — unique in the
//     cluster and stable across redeliveries. Triggered (synthetic) events
//     have a random "t-…" ID.
//
// Limits of the guarantee: a handler that fails after its retries is not
// retried later (the event counts as handled; see hook metrics); events
// older than the retained history (10 000 revisions by default) when a
// leader reaches them are skipped with a warning; a node event still
// queued on the node that observed it when that node stops is lost, and
// one whose recording timed out after reaching the leader may be recorded
// twice (under two IDs). In-process handlers run in the leader's process:
// register them on every node (node.Node.Subscribe) so whichever leads
// fires them.
package hooks
