import { describe, expect, it } from 'vitest';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { PageMap } from '../../machines/node/page-map.js';
import { emptyNodeState, writeSequencesPerIncarnation } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/**
 * A step copies every record it changes (the simulator keeps old states), so
 * a record that a client write changes must stay as small as the work in
 * flight. One that grew with the pages ever written made every write copy
 * it: a counter of write sequences per page did, and 1,024 randomly written
 * pages of 4 MiB made a write 35 times dearer (`BENCH_PAGES=1024 npm run
 * bench:node-step`: 600 µs instead of 17). Writes to many pages, each carried
 * through to its reply, must leave every record of the node the size it was.
 */
const pageCount = 512;
const volume: VolumeDefinition = { name: 'big', pageCount, pageSizeBlocks: 16, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] };

/** How many entries a record holds (a list's length, a map's size, an object's keys); null for a plain value. */
function entryCount(value: unknown): number | null {
  if (value instanceof Map || value instanceof PageMap) return value.size;
  if (Array.isArray(value)) return value.length;
  if (typeof value === 'object' && value !== null) return Object.keys(value).length;
  return null;
}

function recordSizes(state: NodeState): Record<string, number> {
  return Object.fromEntries(Object.entries(state).flatMap(([field, value]) => {
    const count = entryCount(value);
    return count === null ? [] : [[field, count]];
  }));
}

/** Writes one block of `page` and carries the write through to its reply, completing its I/O at once. */
function writeThrough(state: NodeState, page: number, requestId: string): NodeState {
  const pending: NodeInput[] = [{
    type: 'client.request', requestId, connectionId: 'test',
    operation: { kind: 'write', pageKey: { volume: volume.name, page }, offsetBlocks: 0, lengthBlocks: 1, fua: false },
  }];
  let replies = 0;
  for (let steps = 0; pending.length > 0; steps += 1) {
    expect(steps, 'a write needs a handful of steps').toBeLessThan(20);
    let effects: NodeEffect[];
    [state, effects] = nodeStep(state, pending.shift()!);
    for (const effect of effects) {
      if (effect.type === 'data.write' || effect.type === 'data.sync') pending.push({ type: 'io.done', completionId: effect.completionId, ok: true });
      if (effect.type === 'meta.commit' && effect.completionId) pending.push({ type: 'io.done', completionId: effect.completionId, ok: true });
      if (effect.type === 'client.reply') {
        expect(effect.outcome.status).toBe('ok');
        replies += 1;
      }
    }
  }
  expect(replies).toBe(1);
  return state;
}

describe('records a client write changes', () => {
  it(`stay the same size after writes to ${pageCount} pages`, () => {
    const config = { ...defaultNodeConfig('s1', ['s1']), traceTransitions: false };
    let state = nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords([volume], 's1') })[0];
    // One write first, so records that hold one entry per volume or connection (the loss watch) have it.
    state = writeThrough(state, 0, 'warm-up');
    const before = recordSizes(state);
    expect(Object.keys(before).length, 'the node has records to compare').toBeGreaterThan(10);
    expect(before['replicas'], 'the node holds a copy of every page').toBe(pageCount);
    for (let page = 0; page < pageCount; page += 1) state = writeThrough(state, page, `w${page}`);
    expect(recordSizes(state)).toEqual(before);
    expect(state.localWritesInFlight.size).toBe(0);
  });

  it('stops a server that has used up its incarnation\'s write sequences rather than number a write into the next one\'s', () => {
    const config = { ...defaultNodeConfig('s1', ['s1']), traceTransitions: false };
    const started = nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords([volume], 's1') })[0];
    const lastOfIncarnation = 2 * writeSequencesPerIncarnation - 1;
    expect(writeThrough({ ...started, lastWriteSequence: lastOfIncarnation - 1 }, 0, 'last').lastWriteSequence).toBe(lastOfIncarnation);
    expect(() => writeThrough({ ...started, lastWriteSequence: lastOfIncarnation }, 0, 'one too many')).toThrow(/write sequences of this incarnation/);
  });
});
