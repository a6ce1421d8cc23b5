import { canonicalEnvelope, canonicalObjects, canonicalServer } from './canonical-objects.js';
import type { Envelope, SimServer } from './world.js';
import type { WorldConfig } from './world-config.js';

/**
 * One server's whole reaction to one action, remembered.
 *
 * Theory of operation. An action on server i (a delivered message, a
 * persisted commit, a fired timer, a client request, a move order) first
 * adjusts the server (adds a data token, applies the commit, drops the
 * timer), then runs the node-step cascade: the node steps, its effects are
 * carried out, the I/O completions are fed back, until no input is left.
 * Everything that cascade does to the server depends on the server object
 * and the action alone (and the fixed configuration); what it does to the
 * rest of the world is a short list of events (messages sent, client
 * replies, a violation, a move completing) that are replayed on the world in
 * the order they happened. So the explorer, which meets the same server
 * object with the same action along every interleaving of independent work
 * elsewhere, runs each cascade once: a hit returns the same server object
 * and the same envelope objects, whose fingerprint pieces are already built.
 *
 * Keys are exact: the server object's identity (a WeakMap, so an entry dies
 * with the states that can ask for it), the configuration object's
 * identity, and an action key naming everything the action carries (an
 * envelope by its identity, numbered by a WeakMap; a client request or a
 * move order by its whole content). A miss only costs the cascade; a wrong
 * hit would be unsound. At most `actionsPerServerMax` entries per server.
 *
 * A cascade's server and the envelopes it sends are swapped for equal
 * objects met before (canonical-objects.ts), so the server states and
 * messages a world holds are one object each, and the keys by identity
 * name them by content: a server reached along two paths meets its
 * remembered cascades on both.
 */
export type CascadeEvent =
  | { readonly kind: 'send'; readonly envelope: Envelope }
  /** `lossReported`: a FLUSH failed because a write it covers may have been lost (machines/node/loss-watch.ts). */
  | { readonly kind: 'reply'; readonly requestId: string; readonly ok: boolean; readonly value: number | null; readonly lossReported: boolean }
  | { readonly kind: 'violation'; readonly reason: string }
  /** A client answered with a routing error: a violation if no fault has happened (judged on replay, world.ts). */
  | { readonly kind: 'routingError'; readonly server: string; readonly requestId: string; readonly reason: string }
  /** A page-data write failed at a disk armed to fail it. */
  | { readonly kind: 'dataWriteFailed' }
  | { readonly kind: 'moveCompleted' }
  /** An abandoned move's destination deleted its partial copy. */
  | { readonly kind: 'abandonedCopyReleased' };

export interface CascadeResult {
  readonly server: SimServer;
  readonly events: readonly CascadeEvent[];
}

export interface ServerStepMemoStats {
  hits: number;
  misses: number;
}

export const serverStepMemoStats: ServerStepMemoStats = { hits: 0, misses: 0 };

/** A server object meets a handful of actions (one per message in flight to it, a timer or two, a commit). */
const actionsPerServerMax = 64;

interface Entry {
  readonly config: object;
  readonly result: CascadeResult;
}

const remembered = new WeakMap<SimServer, Map<string, Entry>>();
const envelopeKeys = new WeakMap<Envelope, string>();
let nextEnvelopeSerial = 0;

/**
 * A key naming a delivered envelope by identity (envelopes are immutable and
 * shared between worlds), made once per envelope.
 */
export function envelopeKey(envelope: Envelope): string {
  let key = envelopeKeys.get(envelope);
  if (key === undefined) {
    nextEnvelopeSerial += 1;
    key = `m|${nextEnvelopeSerial}`;
    envelopeKeys.set(envelope, key);
  }
  return key;
}

/** The remembered cascade of this action on this server object, if any. */
export function recalledCascade(server: SimServer, config: WorldConfig, key: string): CascadeResult | undefined {
  const entry = remembered.get(server)?.get(key);
  if (entry !== undefined && entry.config === config) {
    serverStepMemoStats.hits += 1;
    return entry.result;
  }
  serverStepMemoStats.misses += 1;
  return undefined;
}

/** Remembers a cascade just run (`key` null: not remembered), with its server and envelopes swapped for equal ones met before. */
export function rememberCascade(server: SimServer, config: WorldConfig, key: string | null, ran: CascadeResult): CascadeResult {
  const result = canonical(ran, config);
  if (key === null) return result;
  let known = remembered.get(server);
  if (!known) {
    known = new Map();
    remembered.set(server, known);
  }
  if (known.size < actionsPerServerMax) known.set(key, { config, result });
  return result;
}

function canonical(result: CascadeResult, config: WorldConfig): CascadeResult {
  if (!canonicalObjects.enabled) return result;
  const events = result.events.map((event) => (event.kind === 'send' ? { kind: 'send' as const, envelope: canonicalEnvelope(event.envelope) } : event));
  return { server: canonicalServer(result.server, config), events };
}
