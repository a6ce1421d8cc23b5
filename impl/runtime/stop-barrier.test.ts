import { describe, expect, it } from 'vitest';
import type { RuntimeReply } from './server-runtime.js';
import type { StopBarrierRuntime } from './stop-barrier.js';
import { syncEveryAcknowledgedWrite } from './stop-barrier.js';

/** A runtime whose FLUSH of each volume answers as `answers` says (never: it does not answer). */
function runtimeAnswering(answers: Record<string, RuntimeReply['outcome'] | 'never'>, earlierRunsSynced: boolean): StopBarrierRuntime & { flushed: string[] } {
  const flushed: string[] = [];
  return {
    flushed,
    state: { earlierRunsSynced, volumes: Object.fromEntries(Object.keys(answers).map((volume) => [volume, {}])) },
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
  it('flushes every volume and says so when all succeed with earlier runs synced', async () => {
    const runtime = runtimeAnswering({ alpha: ok, beta: ok }, true);
    expect(await syncEveryAcknowledgedWrite(runtime)).toBe(true);
    expect(runtime.flushed.sort()).toEqual(['stop-barrier:alpha', 'stop-barrier:beta']);
  });

  it('does not when a FLUSH fails, when it outlasts the bound, or when earlier runs are not known synced', async () => {
    expect(await syncEveryAcknowledgedWrite(runtimeAnswering({ alpha: ok, beta: eio }, true))).toBe(false);
    expect(await syncEveryAcknowledgedWrite(runtimeAnswering({ alpha: ok, beta: 'never' }, true), 50)).toBe(false);
    expect(await syncEveryAcknowledgedWrite(runtimeAnswering({ alpha: ok }, false))).toBe(false);
  });

  it('says so for a server that knows no volume: it never acknowledged a write', async () => {
    expect(await syncEveryAcknowledgedWrite(runtimeAnswering({}, false))).toBe(true);
  });
});
