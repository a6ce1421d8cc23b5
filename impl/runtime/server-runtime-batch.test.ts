import { describe, expect, it } from 'vitest';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { RuntimeReply } from './server-runtime.js';
import { memoryPages } from './memory-pages.js';
import { ServerRuntime } from './server-runtime.js';

/**
 * The runtime steps the inputs it has queued together (`batch`, and the I/O
 * completions a step's effects produce at once). Requests handed over in one
 * batch must each be answered, and a failure while one input's effects run
 * (here the trace sink throws on the first transition of the batch) must not
 * cost the other inputs their effects: the failure surfaces from `batch`
 * after every effect and every input queued has been carried out.
 */

function withinMs<T>(promise: Promise<T>, timeoutMs: number): Promise<T | 'timed out'> {
  return Promise.race([promise, new Promise<'timed out'>((resolve) => setTimeout(() => resolve('timed out'), timeoutMs))]);
}

describe('server runtime batches', () => {
  it('answers every request of a batch, even when running one effect of it throws', async () => {
    let traceThrows = false;
    let traceEvents = 0;
    const pages = memoryPages();
    const runtime = new ServerRuntime({
      config: { ...defaultNodeConfig('s1', ['s1']), traceTransitions: true },
      incarnation: 1,
      pages,
      metadata: { load: () => ({ volumes: [], routes: [], replicas: [], moves: [] }), commit: async () => undefined },
      peers: { send: () => undefined },
      log: () => undefined,
      trace: () => {
        traceEvents += 1;
        if (traceThrows) {
          traceThrows = false;
          throw new Error('trace sink failed');
        }
      },
    });
    runtime.start();
    expect((await runtime.createVolume({ name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] })).ok).toBe(true);

    const write = (offsetBlocks: number, byte: number) =>
      runtime.request({ kind: 'write', pageKey: { volume: 'v', page: 0 }, offsetBlocks, lengthBlocks: 1, fua: false }, Buffer.alloc(512, byte), 'test');
    let replies: Array<Promise<RuntimeReply>> = [];
    traceThrows = true;
    expect(() => runtime.batch(() => {
      replies = [write(0, 1), write(1, 2), write(2, 3)];
    })).toThrow('trace sink failed');
    const outcomes = await Promise.all(replies.map(async (reply) => withinMs(reply.then((answer) => answer.outcome.status), 1_000)));
    expect(outcomes).toEqual(['ok', 'ok', 'ok']);
    expect(pages.writesDoneNow).toBe(3);
    expect(traceEvents).toBeGreaterThan(3);

    const read = await runtime.request({ kind: 'read', pageKey: { volume: 'v', page: 0 }, offsetBlocks: 0, lengthBlocks: 3, fua: false }, null, 'test');
    expect(read.outcome.status).toBe('ok');
    expect([...read.data!.subarray(0, 3 * 512)].filter((_, index) => index % 512 === 0)).toEqual([1, 2, 3]);
    runtime.stop();
  });
  it('answers a request or FLUSH that comes after stop with ESHUTDOWN, rather than never', async () => {
    const runtime = new ServerRuntime({
      config: defaultNodeConfig('s1', ['s1']), incarnation: 1, pages: memoryPages(),
      metadata: { load: () => ({ volumes: [], routes: [], replicas: [], moves: [] }), commit: async () => undefined },
      peers: { send: () => undefined }, log: () => undefined,
    });
    runtime.start();
    expect((await runtime.createVolume({ name: 'v', pageCount: 1, pageSizeBlocks: 8, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] })).ok).toBe(true);
    runtime.stop();
    const write = runtime.request({ kind: 'write', pageKey: { volume: 'v', page: 0 }, offsetBlocks: 0, lengthBlocks: 1, fua: false }, Buffer.alloc(512, 1), 'test');
    expect(await withinMs(write.then((reply) => reply.outcome), 1_000)).toEqual({ status: 'error', errno: 108, reason: 'server shutting down' });
    expect(await withinMs(runtime.flush('test', 'v').then((reply) => reply.outcome.status), 1_000)).toBe('error');
  });
});
