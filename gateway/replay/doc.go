// Package replay rejects replayed requests: a request carries a nonce
// (X-Caracal-Nonce) and a unix timestamp (X-Caracal-Timestamp); the
// timestamp must be within a window of now, and the nonce is accepted at
// most once across all gateway replicas.
//
// The shared store is Redis (SET key 1 NX PX 2×window). A local cache in
// front of it answers repeats seen by this replica without a round trip; it
// only ever rejects, so evicting from it early is safe, and Redis stays the
// single authority for first sight. A nonce need only be remembered for
// 2×window: after that its timestamp is outside the window anyway.
package replay
