import type { RegisterState } from './register-check.js';

/**
 * The world's client bookkeeping — its list of client operations and the
 * per-block registers that judge linearizability — changed the same way
 * along many paths, remembered.
 *
 * Theory of operation. A reply, a new client request or a crash that
 * abandons requests makes a new clients list and a new registers list from
 * the old ones. The explorer meets one (clients, registers) pair with one
 * change along every interleaving of unrelated work, and each time the
 * change built new lists, whose fingerprint pieces (a JSON text, interned)
 * were then built again: a quarter of the fingerprint's time. So the change
 * is remembered per pair of list objects (WeakMaps: an entry dies with the
 * lists) and per change, named in full by `key`; a hit returns the same
 * lists, whose pieces are cached. The change must be a function of the two
 * lists and what `key` names.
 *
 * Bound: at most `changesPerPairMax` changes are remembered per pair; past
 * that a change is computed each time.
 */
export interface ClientBookkeeping<Client> {
  readonly clients: readonly Client[];
  readonly registers: readonly RegisterState[];
  /** What went wrong, if the change broke a property (a reply to an operation not pending, a non-linearizable result). */
  readonly violation: string | null;
}

export const changesPerPairMax = 64;

const remembered = new WeakMap<readonly unknown[], WeakMap<readonly RegisterState[], Map<string, ClientBookkeeping<unknown>>>>();

export function rememberedClientChange<Client>(clients: readonly Client[], registers: readonly RegisterState[], key: string, change: () => ClientBookkeeping<Client>): ClientBookkeeping<Client> {
  let byRegisters = remembered.get(clients);
  if (byRegisters === undefined) {
    byRegisters = new WeakMap();
    remembered.set(clients, byRegisters);
  }
  let changes = byRegisters.get(registers);
  if (changes === undefined) {
    changes = new Map();
    byRegisters.set(registers, changes);
  }
  const known = changes.get(key) as ClientBookkeeping<Client> | undefined;
  if (known !== undefined) return known;
  const result = change();
  if (changes.size < changesPerPairMax) changes.set(key, result);
  return result;
}
