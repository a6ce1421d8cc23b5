/**
 * Histories of a simulated linearizable register group, for the checker's
 * self-tests and benchmark: `processCount` clients each run operations one
 * after another on random blocks, so operations of different clients overlap
 * in time. Every operation takes effect at one instant inside its interval
 * (its linearization point), and reads return the block's value at that
 * instant, so the history is linearizable by construction. A write may end
 * `info` (the client stopped waiting); such a write takes effect at its point
 * or never, chosen at random.
 */
import type { Operation } from './history-event.js';
import { initialValue } from './history-event.js';
import { RandomSource } from './random-source.js';

export interface SimulationOptions {
  readonly seed: number;
  readonly processCount: number;
  readonly blockCount: number;
  readonly operationCount: number;
  readonly readProbability?: number;
  readonly infoProbability?: number;
  /** Each half of an operation (call to effect, effect to return) lasts up to this long. */
  readonly latencyMaxNs?: number;
}

interface Draft {
  id: number;
  process: number;
  f: 'read' | 'write';
  block: number;
  value: number;
  invokeNs: number;
  effectNs: number;
  completeNs: number;
  outcome: 'ok' | 'info';
  takesEffect: boolean;
}

export function simulateRegisterHistory(options: SimulationOptions): Operation[] {
  const random = new RandomSource(options.seed);
  const readProbability = options.readProbability ?? 0.5;
  const infoProbability = options.infoProbability ?? 0;
  const latencyMaxNs = options.latencyMaxNs ?? 1_000;
  const clocks = new Float64Array(options.processCount);
  const drafts: Draft[] = [];
  let nextWriteId = 1;
  for (let id = 0; id < options.operationCount; id += 1) {
    const process = id % options.processCount;
    const invokeNs = clocks[process]! + 1 + random.below(latencyMaxNs);
    const effectNs = invokeNs + random.below(latencyMaxNs);
    const completeNs = effectNs + random.below(latencyMaxNs);
    clocks[process] = completeNs;
    const isRead = random.chance(readProbability);
    const info = !isRead && random.chance(infoProbability);
    drafts.push({
      id, process, f: isRead ? 'read' : 'write', block: random.below(options.blockCount), value: isRead ? initialValue : nextWriteId++,
      invokeNs, effectNs, completeNs, outcome: info ? 'info' : 'ok', takesEffect: !info || random.chance(0.5),
    });
  }
  const values = new Map<number, number>();
  const byEffect = [...drafts].sort((left, right) => left.effectNs - right.effectNs || left.id - right.id);
  for (const draft of byEffect) {
    if (draft.f === 'read') draft.value = values.get(draft.block) ?? initialValue;
    else if (draft.takesEffect) values.set(draft.block, draft.value);
  }
  return drafts.map((draft) => ({
    id: draft.id, process: draft.process, connection: draft.process, f: draft.f, block: draft.block, value: draft.value, fua: false, final: false,
    outcome: draft.outcome, invokeNs: draft.invokeNs, completeNs: draft.outcome === 'info' ? Infinity : draft.completeNs,
  }));
}
