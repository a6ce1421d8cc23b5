import { describe, expect, it } from 'vitest';
import type { RuntimeReply } from './server-runtime.js';
import type { StopBarrierRuntime } from './stop-barrier.js';
import { lingerQuietMs, syncEveryAcknowledgedWrite } from './stop-barrier.js';

type FakeRuntime = StopBarrierRuntime & { flushed: string[]; lastFlushRequestAtMs: number; state: { earlierRunsSynced: boolean; volumes: Record<string, unknown>; lossWatches: Record<string, { unflushed: Array<{ server: string }> }> } };

/** A runtime whose FLUSH of each volume answers as `answers` says (never: it does not answer). */
function runtimeAnswering(answers: Record<string, RuntimeReply['outcome'] | 'never'>, earlierRunsSynced: boolean): FakeRuntime {
  const flushed: string[] = [];
  return {
    flushed,
    lastFlushRequestAtMs: Number.NEGATIVE_INFINITY,
    state: { earlierRunsSynced, volumes: Object.fromEntries(Object.keys(answers).map((volume) => [volume, {}])), lossWatches: {} },
    flush(connectionId, volume) {
      flushed.push(`${connectionId}:${volume}`);
      const outcome = answers[volume]!;
      return outcome === 'never' ? new Promise(() => undefined) : Promise.resolve({ outcome, data: null });
    },
  };
}

const ok = { status: 'ok' } as const;
const eio = { status: 'error', errno: 5, reason: 'writes acknowledged before this flush may have been lost' } as const;

describe('the stop barrier: a clean stop records every acknowledged write durable only when it knows so', () => {
  it('flushes every volume and says so when all succeed with earlier runs synced and nothing left unflushed', async () => {
    const runtime = runtimeAnswering({ alpha: ok, beta: ok }, true);
    expect(await syncEveryAcknowledgedWrite(runtime)).toBe(true);
    expect(runtime.flushed.sort()).toEqual(['stop-barrier:alpha', 'stop-barrier:beta']);
  });

  it('does not when a FLUSH fails, when it outlasts the bound, or when earlier runs are not known synced', async () => {
    expect(await syncEveryAcknowledgedWrite(runtimeAnswering({ alpha: ok, beta: eio }, true))).toBe(false);
    expect(await syncEveryAcknowledgedWrite(runtimeAnswering({ alpha: ok, beta: 'never' }, true), 50)).toBe(false);
    expect(await syncEveryAcknowledgedWrite(runtimeAnswering({ alpha: ok }, false))).toBe(false);
    // A server that knows no volume says what it knows of earlier runs: one may have served a volume it forgot in a crash.
    expect(await syncEveryAcknowledgedWrite(runtimeAnswering({}, false))).toBe(false);
    expect(await syncEveryAcknowledgedWrite(runtimeAnswering({}, true))).toBe(true);
  });

  it('does not when a write was acknowledged after its FLUSHes began (a request in flight when its connection closed)', async () => {
    const runtime = runtimeAnswering({ alpha: ok }, true);
    runtime.state.lossWatches['alpha'] = { unflushed: [{ server: 's2' }] };
    expect(await syncEveryAcknowledgedWrite(runtime)).toBe(false);
  });

  it('does not flush, nor wait, when a holder of an unflushed write cannot be reached', async () => {
    const runtime = runtimeAnswering({ alpha: 'never' }, true);
    runtime.state.lossWatches['alpha'] = { unflushed: [{ server: 's3' }] };
    const startedMs = performance.now();
    expect(await syncEveryAcknowledgedWrite(runtime, 3_000, (server) => server !== 's3')).toBe(false);
    expect(runtime.flushed).toEqual([]);
    expect(performance.now() - startedMs).toBeLessThan(1_000);
  });

  it('lingers, still answering peers, until none has asked for a sync for a while (a group stopping together)', async () => {
    const runtime = runtimeAnswering({ alpha: ok }, true);
    const startedMs = performance.now();
    runtime.lastFlushRequestAtMs = startedMs;
    const asking = setInterval(() => { runtime.lastFlushRequestAtMs = performance.now(); }, 20);
    setTimeout(() => clearInterval(asking), 300);
    expect(await syncEveryAcknowledgedWrite(runtime)).toBe(true);
    const tookMs = performance.now() - startedMs;
    expect(tookMs).toBeGreaterThanOrEqual(300 + lingerQuietMs - 30);
    expect(tookMs).toBeLessThan(2_000);
  });
});
