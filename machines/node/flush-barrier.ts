import type { ServerId } from '../identifiers.js';
import type { NodeDraft } from './node-draft.js';
import type { NodeEffect } from './node-io.js';

/**
 * The one rule that settles part of a FLUSH barrier. A barrier waits for
 * every member to sync; a member's part settles when it answers that its sync
 * is done, or when it leaves the group (it held no page when it left: every
 * page it gave away was synced by its new owner before the flip). The settled
 * members are dropped from the barrier, and a barrier that waits for no one
 * any more answers its client `ok`. Parts that settle twice (a duplicated
 * answer, a member that answered and then left) change nothing.
 */
export interface FlushWork {
  readonly next: NodeDraft;
  readonly effects: NodeEffect[];
}

export function settleFlushParts(work: FlushWork, flushId: string, settled: readonly ServerId[]): void {
  const flush = work.next.read('flushes')[flushId];
  if (!flush) return;
  const remaining = flush.remaining.filter((server) => !settled.includes(server));
  if (remaining.length === flush.remaining.length) return;
  if (remaining.length > 0) {
    work.next.flushes[flushId] = { ...flush, remaining };
    return;
  }
  delete work.next.flushes[flushId];
  work.effects.push({ type: 'client.reply', requestId: flush.requestId, outcome: { status: 'ok' }, dataToken: null });
}
