import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { WorldConfig } from '../world/world-config.js';
import { assertChecked, checkProperty } from './checked-run.js';
import { keptCounterexamples } from './counterexamples.js';
import { formatWalkFailure, runWalk, walkArbitrary } from './random-walk.js';
import { replayTrace } from './replay-trace.js';

/**
 * Every kept counterexample replays with every property holding. A failure
 * here means the model still has the bug the trace was shrunk from; the
 * message is the numbered trace with the property it breaks.
 */
describe('kept counterexamples replay cleanly', () => {
  it.each(keptCounterexamples.map((kept) => [kept.name, kept] as const))('%s', (_name, kept) => {
    const failure = replayTrace(kept.trace, { completionStepsMax: 3_000, routingAgreement: true });
    if (failure) console.log(`${kept.name}\nfound by: ${kept.foundBy}\n${formatWalkFailure(failure)}`);
    expect(failure && `${failure.property}: ${failure.detail}`).toBeNull();
  });
});

/**
 * A counterexample whose trace the fix made unreplayable (a forward it relied
 * on is now refused) is kept as the seeded walk that found it: a superseded
 * forward retried after the client was answered, without its data (seed 5,
 * run 1453). The fix: a server takes one try of a forwarded request at a
 * time, and releases a payload token only when no other try still needs it.
 */
describe('seeded walks that once found a bug now hold', () => {
  it('a superseded forward is retried after the client was answered, without its data (seed 5)', () => {
    const config: WorldConfig = {servers: 2, pages: 1, pieces: 2, writes: 2, reads: 1, moves: 1, crashes: 1, networkFaults: 2, network: 'lossy', moveKinds: ['piecewise'], forwardingPointer: true, messagesMax: 24, timersOnlyWhenQuiet: true, variant: null};
    const seed = 5;
    const numRuns = 2_000;
    console.log(`regression walk seed=${seed} numRuns=${numRuns} bounds=${JSON.stringify(config)}`);
    const run = checkProperty('superseded forward regression', fc.property(walkArbitrary(fc.constant(config), 60), (input) => {
      const failure = runWalk(input, { completionStepsMax: 3_000, routingAgreement: true });
      if (failure) throw new Error(formatWalkFailure(failure));
    }), { seed, numRuns, timeLimitMs: 30_000 });
    assertChecked(run, numRuns);
  });
});
