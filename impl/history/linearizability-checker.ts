/**
 * Per-block linearizability of a register history, by the Wing–Gong search
 * with Lowe's memoisation (the algorithm of Knossos and Porcupine).
 *
 * Blocks are independent registers, so the history is partitioned by block
 * and each block is searched alone (linearizability is local). Within a
 * block, calls and returns form a doubly linked list in time order. The
 * search walks it: at a call it tries to linearize that operation now
 * (the model must accept it, and the pair (set of linearized operations,
 * model state) must be new, else that subtree was already refuted); at a
 * return whose operation is not yet linearized it backtracks. Reaching the
 * end of the list linearizes the block.
 *
 * What is searched. Reads that failed or timed out constrain nothing and are
 * dropped. A write answered with an error (`fail`) may have reached a copy
 * before its answer, never after it (a forward that times out is cancelled
 * before it fails: machines/routing/request-routing.machine.ts): it is kept,
 * with its answer as its return, and, like any write nobody saw, dropped
 * when no read returned its value. (It used to be dropped as never having
 * happened, which a write that failed after reaching the source of a move
 * contradicts.) A write with an
 * unknown outcome (`info`) has its return at +infinity, so it may linearize
 * at any moment after its call; "never" needs no special case, because
 * linearizing it after everything else is observably the same. An `info`
 * write whose value no read returned is dropped altogether: leaving out a
 * write nobody saw never makes a valid history invalid, and those writes
 * would otherwise widen the search for nothing. Power-loss crashes, when the
 * run had any, are added to every block (they may roll any block back; see
 * register-models.ts).
 *
 * Bounds. Each block's search has a step budget; a block that exhausts it is
 * reported `unknown`, never valid.
 */
import type { Operation } from './history-event.js';
import { garbageValue, initialValue } from './history-event.js';
import { requiredDurableTimes } from './durability.js';
import type { RegisterModel } from './register-models.js';
import { plainRegister, powerLossRegister } from './register-models.js';

export type Verdict = 'valid' | 'invalid' | 'unknown';

export interface BlockVerdict {
  readonly block: number;
  readonly verdict: Verdict;
  /** Operations the search considered for this block (crashes included). */
  readonly operationCount: number;
  readonly searchSteps: number;
  /** For an invalid block: why, in a sentence. */
  readonly reason?: string;
  /** For an invalid block: the operation that could not be linearized at the deepest point the search reached. */
  readonly blockedOperationId?: number;
  /** For an invalid block: the most operations the search linearized, in order. */
  readonly longestLinearization?: readonly number[];
}

export interface HistoryVerdict {
  readonly verdict: Verdict;
  readonly blocks: readonly BlockVerdict[];
  readonly invalidBlocks: readonly BlockVerdict[];
  readonly unknownBlocks: readonly BlockVerdict[];
}

export interface CheckOptions {
  /** The search budget of one block, in steps (a step is one attempt to linearize or undo). */
  readonly searchStepsMaxPerBlock?: number;
}

const defaultSearchStepsMaxPerBlock = 5_000_000;

export function checkHistory(operations: readonly Operation[], options: CheckOptions = {}): HistoryVerdict {
  const searchStepsMax = options.searchStepsMaxPerBlock ?? defaultSearchStepsMaxPerBlock;
  const crashes = operations.filter((operation) => operation.f === 'crash' && operation.outcome !== 'fail')
    .sort((left, right) => left.invokeNs - right.invokeNs)
    .map((crash, index): Operation => ({ ...crash, value: index, completeNs: Number.isFinite(crash.completeNs) ? crash.completeNs : crash.invokeNs }));
  const byBlock = new Map<number, Operation[]>();
  for (const operation of operations) {
    if (operation.f !== 'read' && operation.f !== 'write') continue;
    if (operation.f === 'read' && operation.outcome !== 'ok') continue;
    let list = byBlock.get(operation.block);
    if (!list) byBlock.set(operation.block, (list = []));
    list.push(operation);
  }
  const model: RegisterModel<unknown> = (crashes.length === 0
    ? plainRegister
    : powerLossRegister(crashes.map((crash) => crash.completeNs), requiredDurableTimes(operations))) as RegisterModel<unknown>;
  const blocks: BlockVerdict[] = [];
  for (const [block, blockOperations] of [...byBlock].sort((left, right) => left[0] - right[0])) {
    blocks.push(checkBlock(block, [...blockOperations, ...crashes], model, searchStepsMax));
  }
  const invalidBlocks = blocks.filter((block) => block.verdict === 'invalid');
  const unknownBlocks = blocks.filter((block) => block.verdict === 'unknown');
  return { verdict: invalidBlocks.length > 0 ? 'invalid' : unknownBlocks.length > 0 ? 'unknown' : 'valid', blocks, invalidBlocks, unknownBlocks };
}

export function checkBlock<State>(block: number, candidates: readonly Operation[], model: RegisterModel<State>, searchStepsMax: number): BlockVerdict {
  const readValues = new Set<number>();
  const writtenValues = new Set<number>();
  for (const operation of candidates) {
    if (operation.f === 'read') readValues.add(operation.value);
    else if (operation.f === 'write') writtenValues.add(operation.value);
  }
  for (const operation of candidates) {
    if (operation.f !== 'read') continue;
    if (operation.value === garbageValue) {
      return { block, verdict: 'invalid', operationCount: candidates.length, searchSteps: 0, blockedOperationId: operation.id, reason: `read ${operation.id} returned bytes that no write of block ${block} stored${operation.note ? ` (${operation.note})` : ''}` };
    }
    if (operation.value !== initialValue && !writtenValues.has(operation.value)) {
      return { block, verdict: 'invalid', operationCount: candidates.length, searchSteps: 0, blockedOperationId: operation.id, reason: `read ${operation.id} returned write ${operation.value}, which was never written to block ${block}` };
    }
  }
  const operations = candidates.filter((operation) => operation.f !== 'write' || operation.outcome === 'ok' || readValues.has(operation.value));
  const result = search(operations, model, searchStepsMax);
  if (result.verdict === 'valid') return { block, verdict: 'valid', operationCount: operations.length, searchSteps: result.steps };
  if (result.verdict === 'unknown') {
    return { block, verdict: 'unknown', operationCount: operations.length, searchSteps: result.steps, reason: `search budget of ${searchStepsMax} steps exhausted` };
  }
  const blocked = operations[result.blockedIndex];
  return {
    block, verdict: 'invalid', operationCount: operations.length, searchSteps: result.steps,
    reason: `no linearization explains ${blocked ? `${blocked.f} ${blocked.id} (value ${blocked.value})` : 'the history'}`,
    ...(blocked ? { blockedOperationId: blocked.id } : {}),
    longestLinearization: result.longest.map((index) => operations[index]!.id),
  };
}

type SearchResult =
  | { verdict: 'valid'; steps: number }
  | { verdict: 'unknown'; steps: number }
  | { verdict: 'invalid'; steps: number; blockedIndex: number; longest: number[] };

/**
 * Entries 1..2n: entry 2i+1 is the call of operation i, entry 2i+2 its
 * return; entry 0 is the list head. Ties order calls before returns, which
 * treats operations that touch in time as concurrent (the permissive reading
 * of equal timestamps).
 */
function search<State>(operations: readonly Operation[], model: RegisterModel<State>, searchStepsMax: number): SearchResult {
  const count = operations.length;
  if (count === 0) return { verdict: 'valid', steps: 0 };
  const entryCount = 2 * count + 1;
  const times = new Float64Array(entryCount);
  const calls = new Int32Array(count);
  const returns = new Int32Array(count);
  for (let index = 0; index < count; index += 1) {
    const operation = operations[index]!;
    times[2 * index + 1] = operation.invokeNs;
    times[2 * index + 2] = operation.completeNs;
    calls[index] = 2 * index + 1;
    returns[index] = 2 * index + 2;
  }
  // Histories arrive nearly in time order, so insertion sorts cost about one pass each.
  insertionSortByTime(calls, times);
  insertionSortByTime(returns, times);
  const order = new Int32Array(2 * count);
  for (let call = 0, ret = 0, out = 0; out < 2 * count; out += 1) {
    // Calls go first on ties: touching operations count as concurrent.
    if (ret >= count || (call < count && times[calls[call]!]! <= times[returns[ret]!]!)) order[out] = calls[call++]!;
    else order[out] = returns[ret++]!;
  }
  const next = new Int32Array(entryCount).fill(-1);
  const previous = new Int32Array(entryCount).fill(-1);
  let last = 0;
  for (const entry of order) {
    next[last] = entry;
    previous[entry] = last;
    last = entry;
  }

  const words = (count + 31) >>> 5;
  const linearized = new Uint32Array(words);
  const operationHash = new Uint32Array(count);
  let seed = 0x2545f491 ^ count;
  for (let index = 0; index < count; index += 1) {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0;
    operationHash[index] = (seed ^ (seed >>> 13)) >>> 0;
  }
  let bitsHash = 0;
  // The memo lives in flat arenas (bits, states, hash-chain links) rather than one object per entry:
  // a block linearizes with about one entry per operation, and a million small allocations dominate otherwise.
  let arenaBits = new Uint32Array(Math.max(64, 2 * count * words));
  let chain = new Int32Array(Math.max(64, 2 * count));
  const arenaStates: State[] = [];
  const chainHeads = new Map<number, number>();
  const seen = (state: State): boolean => {
    const key = (bitsHash ^ model.hash(state)) >>> 0;
    const head = chainHeads.get(key);
    for (let candidate = head ?? -1; candidate >= 0; candidate = chain[candidate]!) {
      if (!model.equal(arenaStates[candidate]!, state)) continue;
      let same = true;
      const base = candidate * words;
      for (let word = 0; word < words; word += 1) {
        if (arenaBits[base + word] !== linearized[word]) {
          same = false;
          break;
        }
      }
      if (same) return true;
    }
    const slot = arenaStates.length;
    if ((slot + 1) * words > arenaBits.length) {
      const grown = new Uint32Array(arenaBits.length * 2);
      grown.set(arenaBits);
      arenaBits = grown;
    }
    if (slot >= chain.length) {
      const grown = new Int32Array(chain.length * 2);
      grown.set(chain);
      chain = grown;
    }
    arenaBits.set(linearized, slot * words);
    arenaStates.push(state);
    chain[slot] = head ?? -1;
    chainHeads.set(key, slot);
    return false;
  };

  const lift = (call: number) => {
    const ret = call + 1;
    next[previous[call]!] = next[call]!;
    if (next[call]! >= 0) previous[next[call]!] = previous[call]!;
    next[previous[ret]!] = next[ret]!;
    if (next[ret]! >= 0) previous[next[ret]!] = previous[ret]!;
  };
  const unlift = (call: number) => {
    const ret = call + 1;
    next[previous[ret]!] = ret;
    if (next[ret]! >= 0) previous[next[ret]!] = ret;
    next[previous[call]!] = call;
    if (next[call]! >= 0) previous[next[call]!] = call;
  };

  const stackCalls: number[] = [];
  const stackStates: State[] = [];
  let state = model.initial;
  let steps = 0;
  let longest: number[] = [];
  let blockedIndex = -1;
  let entry = next[0]!;
  while (next[0]! >= 0) {
    if (++steps > searchStepsMax) return { verdict: 'unknown', steps };
    if ((entry & 1) === 1) {
      const index = (entry - 1) >>> 1;
      const after = model.step(state, operations[index]!);
      if (after !== null) {
        linearized[index >>> 5]! |= 1 << (index & 31);
        bitsHash ^= operationHash[index]!;
        if (!seen(after)) {
          stackCalls.push(entry);
          stackStates.push(state);
          state = after;
          lift(entry);
          entry = next[0]!;
          continue;
        }
        linearized[index >>> 5]! &= ~(1 << (index & 31));
        bitsHash ^= operationHash[index]!;
      }
      entry = next[entry]!;
      continue;
    }
    // A return whose call is not linearized: this branch cannot go on.
    if (stackCalls.length > longest.length || blockedIndex < 0) {
      longest = stackCalls.map((call) => (call - 1) >>> 1);
      blockedIndex = (entry - 2) >>> 1;
    }
    const call = stackCalls.pop();
    if (call === undefined) return { verdict: 'invalid', steps, blockedIndex, longest };
    state = stackStates.pop()!;
    const index = (call - 1) >>> 1;
    linearized[index >>> 5]! &= ~(1 << (index & 31));
    bitsHash ^= operationHash[index]!;
    unlift(call);
    entry = next[call]!;
  }
  return { verdict: 'valid', steps };
}

function insertionSortByTime(entries: Int32Array, times: Float64Array): void {
  for (let index = 1; index < entries.length; index += 1) {
    const entry = entries[index]!;
    const time = times[entry]!;
    let position = index - 1;
    while (position >= 0 && times[entries[position]!]! > time) {
      entries[position + 1] = entries[position]!;
      position -= 1;
    }
    entries[position + 1] = entry;
  }
}
