import { describe, expect, it } from 'vitest';
import { explore } from './explore.js';
import { earlierForwardInFlight, fenceScenarioConfig as config, fenceScenarioWorld } from './incarnation-fence-scenario.js';

/**
 * A restarted server's answer to the cancel of a try it knows nothing of
 * (machines/node/incarnation-fence.ts), explored exhaustively from the
 * moment it matters.
 *
 * Before the fence, this configuration (with one early time-out) found,
 * after 2.1 million states, a write landing after its client was told it
 * failed (24 steps): s2's client write went to s1, which had moved the page
 * to s3 and forwarded the write there (a forwarding pointer, FIG. 7), then
 * crashed with the forward still on its way; s2's time-out asked the
 * restarted s1 to cancel the try, s1 answered "cancelled", s2 failed the
 * write, a read through s3 returned the old value, and then the forward
 * landed. With the fence that configuration is exhausted at 4.9 million
 * states without a violation: too many for CI. The search here starts after
 * the first 17 steps of that trace (incarnation-fence-scenario.ts: the move
 * done, the forward sent, s1 crashed and restarted, s2's cancel on its way), allows one more early
 * time-out (so that s2 can ask again while the forward is still in flight),
 * and explores every future. Taking out either half of the fence makes it
 * find the lost write: s1 answering before both members confirmed, or s3
 * running a forward of s1's first incarnation that arrives after the fence
 * (on its own connection, so after the fence: world.ts, `fromIncarnation`).
 */
describe('the incarnation fence, from a restarted forwarding pointer with its forward in flight', () => {
  it('every future holds every property; the write is failed in some, behind a fence both members confirmed', () => {
    const start = fenceScenarioWorld();
    // The scenario as the trace had it: s1's forward of s2's write to s3 is still on its way, from s1's first incarnation.
    expect(earlierForwardInFlight(start)).toBe(true);
    expect(start.servers[0]?.incarnation).toBe(1);
    let failedBehindFence = 0;
    let forwardBehindFloor = 0;
    const result = explore(config, {
      start, statesMax: 2_000_000, depthMax: 200, livenessSamples: Number.MAX_SAFE_INTEGER, livenessEvery: 1, livenessStepsMax: 2_000,
      onNewState: (world) => {
        const s1 = world.servers[0];
        const fenced = s1?.node.incarnationFence.confirmedFrom;
        if (world.clients.some((client) => client.kind === 'write' && client.status === 'error') && fenced?.s2 !== undefined && fenced.s3 !== undefined) failedBehindFence += 1;
        // s3 has set its floor for s1's second incarnation while the first one's forward is still on its way to it.
        if (world.servers[2]?.node.incarnationFence.floors.s1 === 1 && earlierForwardInFlight(world)) forwardBehindFloor += 1;
      },
    });
    console.log(`incarnation fence scenario: ${result.states} states, ${result.transitions} transitions, depth ${result.depth}, ${result.seconds.toFixed(1)} s; `
      + `${failedBehindFence} with the write failed behind the confirmed fence, ${forwardBehindFloor} with s1's first forward on its way to s3 behind s3's floor`);
    expect(result.violation?.detail ?? null).toBeNull();
    expect(result.livenessFailure).toBeNull();
    expect(result.complete).toBe(true);
    expect(failedBehindFence).toBeGreaterThan(0);
    expect(forwardBehindFloor).toBeGreaterThan(0);
    expect(result.states).toBe(20_335);
  }, 300_000);
});
