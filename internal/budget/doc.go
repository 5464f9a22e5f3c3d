// Package budget keeps exact spend budgets across gateway replicas in Redis.
//
// Committed spend lives in time buckets per agent (minute, hour, day, ISO
// week, month); reserved headroom per agent is the sum of the outstanding
// lease grants of the agent and its descendants. Every key of one delegation
// tree carries the hash tag of the root agent ("cr:{<root>}:..."), so each
// Lua script below touches one slot and runs unchanged on Redis Cluster.
//
//   - Store.Reserve (gateway): checks every window of the agent and all its
//     ancestors and grants headroom into a lease, atomically.
//   - Store.Release (gateway): gives the unused part of a lease back.
//   - Store.ApplyBatch (MetricsAggregator): commits spends and releases the
//     matching reservations behind a per-partition offset fence.
//   - Leaser (gateway hot path): serves requests from a local lease without
//     a Redis round trip while headroom remains.
//
// docs/budget.md explains the model and the overshoot bound.
package budget
