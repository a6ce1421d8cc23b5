/**
 * The sequential specifications the checker linearizes against, one block at
 * a time.
 *
 * `plainRegister`: a read returns the value of the last write before it, or
 * the initial 0. This is the model for every run without power loss (a
 * SIGKILL keeps the page cache, so nothing acknowledged may vanish).
 *
 * `powerLossRegister`: the same register, plus `crash` operations (power-loss
 * kills, linearized in their real-time order). A crash may roll the block
 * back to any value written since the last write that was required durable
 * at that crash (see durability.ts), or keep it. Because that choice is
 * nondeterministic, the model's state is the *set* of possible register
 * histories: each is the values written since a point known to be durable
 * (its first element). The history does not say which server holds a block,
 * so a crash may also have spared it (another server lost power): then its
 * history goes on unchanged. If the crash hit it, the recovered value was
 * read from disk, so it becomes the new durable base. Writes durable before
 * the next crash truncate a history to themselves, which keeps the states
 * small.
 */
import type { Operation } from './history-event.js';
import { initialValue } from './history-event.js';

export interface RegisterModel<State> {
  readonly initial: State;
  /** The state after `operation`, or null if the operation cannot happen in `state`. */
  step(state: State, operation: Operation): State | null;
  hash(state: State): number;
  equal(left: State, right: State): boolean;
  describe(state: State): string;
}

export const plainRegister: RegisterModel<number> = {
  initial: initialValue,
  step: (state, operation) => {
    if (operation.f === 'write') return operation.value;
    if (operation.f === 'read') return operation.value === state ? state : null;
    return state;
  },
  hash: (state) => Math.imul(state, 0x9e3779b1) >>> 0,
  equal: (left, right) => left === right,
  describe: (state) => `value ${state}`,
};

export interface PowerLossState {
  /** Possible histories, each starting at a durable base value; sorted and unique. */
  readonly histories: readonly (readonly number[])[];
  readonly crashesSeen: number;
  readonly key: string;
}

/**
 * `crashCompleteNs` are the completion times of the run's crash operations in
 * order; `durableNs` maps a write id to the time it became required durable
 * (durability.ts), Infinity if never. A write that is ever required durable
 * survives every crash linearized after it, whenever its acknowledgement or
 * the FLUSH that vouched for it came: a FUA write acknowledged, or a write
 * covered by a FLUSH answered ok, after a power cut that it was in flight
 * across was still promised to the client, so the cut may not have taken it.
 * (The rule used to judge durability at the crash's completion, which let
 * such a write be lost and the run pass; a review found it.)
 */
export function powerLossRegister(crashCompleteNs: readonly number[], durableNs: ReadonlyMap<number, number>): RegisterModel<PowerLossState> {
  const durableAt = (value: number, crashIndex: number) => crashCompleteNs[crashIndex] === undefined || (durableNs.get(value) ?? Infinity) !== Infinity;
  const make = (histories: (readonly number[])[], crashesSeen: number): PowerLossState => {
    const keyed = new Map<string, readonly number[]>();
    for (const history of histories) keyed.set(history.join(','), history);
    const keys = [...keyed.keys()].sort();
    return { histories: keys.map((key) => keyed.get(key)!), crashesSeen, key: `${crashesSeen}|${keys.join(';')}` };
  };
  return {
    initial: make([[initialValue]], 0),
    step: (state, operation) => {
      if (operation.f === 'write') {
        // After the last crash nothing can roll back, so only the latest value matters.
        const truncate = durableAt(operation.value, state.crashesSeen);
        return make(state.histories.map((history) => (truncate ? [operation.value] : [...history, operation.value])), state.crashesSeen);
      }
      if (operation.f === 'read') {
        const matching = state.histories.filter((history) => history[history.length - 1] === operation.value);
        return matching.length === 0 ? null : make([...matching], state.crashesSeen);
      }
      if (operation.f === 'crash') {
        if (operation.value !== state.crashesSeen) return null;
        const recovered: (readonly number[])[] = [];
        for (const history of state.histories) {
          // The crash spared this block: nothing it held is lost, and nothing it held became durable.
          recovered.push(history);
          let floor = 0;
          for (let index = history.length - 1; index > 0; index -= 1) {
            if (durableAt(history[index]!, state.crashesSeen)) {
              floor = index;
              break;
            }
          }
          for (let index = floor; index < history.length; index += 1) recovered.push([history[index]!]);
        }
        return make(recovered, state.crashesSeen + 1);
      }
      return state;
    },
    hash: (state) => stringHash(state.key),
    equal: (left, right) => left.key === right.key,
    describe: (state) => `after ${state.crashesSeen} crash(es), possible histories ${state.histories.map((history) => `[${history.join(' ')}]`).join(' ')}`,
  };
}

function stringHash(text: string): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index += 1) hash = Math.imul(hash ^ text.charCodeAt(index), 0x01000193);
  return hash >>> 0;
}
