import type { PeerMessage } from '../../machines/node/messages.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';

/**
 * What node tests read off a step's effects: the I/O it started, completed
 * successfully, and the peer messages of one type it sent.
 */

/** Every I/O the effects started, done successfully. */
export function ioDone(effects: readonly NodeEffect[]): NodeInput[] {
  return effects.flatMap((effect) => ('completionId' in effect && effect.completionId ? [{ type: 'io.done', completionId: effect.completionId, ok: true } as const] : []));
}

/** The messages of `type` the effects send, to whichever peer. */
export function sent(effects: readonly NodeEffect[], type: PeerMessage['type']): PeerMessage[] {
  return effects.flatMap((effect) => (effect.type === 'peer.send' && effect.message.type === type ? [effect.message] : []));
}
