import type { ServerId } from '../identifiers.js';

/**
 * The durable state of one server's copy of one page. There is at most one
 * valid copy of a page in the group outside a move; during a move the
 * destination's copy is `receiving` until the destination commits, and the
 * source's copy turns `invalid` when the routing table flips.
 *
 * An invalid copy is never served. It remembers the epoch at which it was
 * given up and the new owner, so a late request is answered with a stale
 * error naming the newer owner — or, in forwarding-pointer mode, forwarded.
 */
export type ReplicaRecord =
  | { readonly status: 'receiving'; readonly source: ServerId; readonly attempt: number; readonly epoch: number }
  | { readonly status: 'valid'; readonly epoch: number }
  | { readonly status: 'invalid'; readonly epoch: number; readonly owner: ServerId; readonly forwardTo: ServerId | null };
