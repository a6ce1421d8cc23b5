import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LossWatch, WriteHolder } from '../../machines/node/loss-watch.js';
import { runSeed } from '../random/run-seed.js';
import { acknowledged, flushSettled, lossEpochsPerServerMax, noLossWatch, unionOfHolders, withConnection, withNoFlushInFlight } from '../../machines/node/loss-watch.js';

/**
 * The bookkeeping behind FLUSH's loss reports (machines/node/loss-watch.ts),
 * on its own: the explorer reaches it only through small worlds, so the
 * bound on entries and the errseq rule are pinned here.
 */
describe('loss watch', () => {
  const open = (...connections: string[]) => connections.reduce((watch, connection) => withConnection(watch, connection, 8, 0)!, noLossWatch);

  it('fails a FLUSH whose covered holder answers with a higher epoch, once per connection open then', () => {
    let watch = acknowledged(open('a', 'b'), [{ server: 's2', lossEpoch: 0 }], false);
    const settled = flushSettled(watch, 'a', watch.acks, 0, { s1: 0, s2: 1 }, {});
    expect(settled.lossReported).toBe(true);
    expect(settled.lostOn).toEqual(['s2']);
    watch = withConnection(settled.watch, 'c', 8, 2)!;
    // FLUSHes started after the loss was found (one loss found by then).
    expect(flushSettled(watch, 'a', watch.acks, 1, { s1: 0, s2: 1 }, {}).lossReported).toBe(false);
    expect(flushSettled(watch, 'b', watch.acks, 1, { s1: 0, s2: 1 }, {}).lossReported).toBe(true);
    expect(flushSettled(watch, 'c', watch.acks, 1, { s1: 0, s2: 1 }, {}).lossReported).toBe(false);
    // One in flight when the loss was found fails even on the connection told: the lost writes may be its own.
    expect(flushSettled(watch, 'a', watch.acks, 0, { s1: 0, s2: 1 }, {}).lossReported).toBe(true);
  });

  it('passes a FLUSH whose holders kept their epochs, and judges a departed holder by the epoch it left with', () => {
    const watch = acknowledged(open('a'), [{ server: 's2', lossEpoch: 3 }, { server: 's3', lossEpoch: 1 }], false);
    expect(flushSettled(watch, 'a', watch.acks, 0, { s2: 3 }, { s3: 1 }).lossReported).toBe(false);
    expect(flushSettled(watch, 'a', watch.acks, 0, { s2: 3 }, { s3: 2 }).lostOn).toEqual(['s3']);
    expect(flushSettled(watch, 'a', watch.acks, 0, { s2: 3 }, {}).lostOn).toEqual(['s3']);
  });

  it('leaves acknowledgements made while a FLUSH was in flight to the next FLUSH', () => {
    let watch = acknowledged(open('a'), [{ server: 's2', lossEpoch: 0 }], false);
    const coveredAcks = watch.acks;
    watch = acknowledged(watch, [{ server: 's3', lossEpoch: 0 }], true);
    const settled = flushSettled(watch, 'a', coveredAcks, 0, { s2: 0, s3: 5 }, {});
    expect(settled.lossReported).toBe(false);
    expect(settled.watch.unflushed.map((entry) => entry.server)).toEqual(['s3']);
    expect(flushSettled(settled.watch, 'a', settled.watch.acks, 0, { s2: 0, s3: 5 }, {}).lostOn).toEqual(['s3']);
  });

  it('checks a holder whose first write the FLUSH covers even when a later write it holds came after the FLUSH began', () => {
    let watch = acknowledged(open('a'), [{ server: 's2', lossEpoch: 0 }], false);
    const coveredAcks = watch.acks;
    watch = acknowledged(watch, [{ server: 's2', lossEpoch: 0 }], true);
    expect(flushSettled(watch, 'a', coveredAcks, 0, { s2: 1 }, {}).lostOn).toEqual(['s2']);
    // Not lost: the entry stays for the later write, which the next FLUSH checks.
    const kept = flushSettled(watch, 'a', coveredAcks, 0, { s2: 0 }, {});
    expect(kept.lossReported).toBe(false);
    expect(kept.watch.unflushed.map((entry) => entry.server)).toEqual(['s2']);
  });

  it('leaves the later writes of a holder found lost for the next FLUSH to report again', () => {
    let watch = acknowledged(open('a'), [{ server: 's1', lossEpoch: 0 }], false);
    const coveredAcks = watch.acks;
    watch = acknowledged(watch, [{ server: 's1', lossEpoch: 0 }], true);
    const first = flushSettled(watch, 'a', coveredAcks, 0, { s1: 1 }, {});
    expect(first.lossReported).toBe(true);
    // The second write, acknowledged while the first FLUSH was in flight, was lost in the same cut.
    expect(flushSettled(first.watch, 'a', first.watch.acks, 1, { s1: 1 }, {}).lossReported).toBe(true);
  });

  it('renumbers entries once no FLUSH is in flight, so a FLUSH after one that timed out still covers them', () => {
    // A FLUSH starts (covering nothing), a write is acknowledged during it (number 1), and the FLUSH times out.
    let watch = acknowledged(open('a'), [{ server: 's1', lossEpoch: 0 }], true);
    expect(watch.unflushed[0]!.firstAck).toBe(1);
    watch = withNoFlushInFlight(watch);
    // Another write with no FLUSH in flight, then a FLUSH that covers everything acknowledged so far.
    watch = acknowledged(watch, [{ server: 's1', lossEpoch: 1 }], false);
    expect(flushSettled(watch, 'a', watch.acks, 0, { s1: 1 }, {}).lostOn).toEqual(['s1']);
    // Without renumbering on time-out, acknowledging with none in flight renumbers as well.
    const timedOut = acknowledged(open('a'), [{ server: 's1', lossEpoch: 0 }], true);
    const next = acknowledged(timedOut, [{ server: 's1', lossEpoch: 1 }], false);
    expect(flushSettled(next, 'a', next.acks, 0, { s1: 1 }, {}).lostOn).toEqual(['s1']);
  });

  it('keeps at most lossEpochsPerServerMax entries per server, merging the oldest (which can only fail a FLUSH more)', () => {
    let watch = open('a');
    for (let epoch = 0; epoch < lossEpochsPerServerMax + 3; epoch += 1) watch = acknowledged(watch, [{ server: 's2', lossEpoch: epoch }], false);
    expect(watch.unflushed.length).toBe(lossEpochsPerServerMax);
    expect(Math.min(...watch.unflushed.map((entry) => entry.lossEpoch))).toBe(0);
    expect(flushSettled(watch, 'a', watch.acks, 0, { s2: lossEpochsPerServerMax + 2 }, {}).lossReported).toBe(true);
  });

  it('tracks at most the connections it is given room for, and keeps holder lists canonical', () => {
    expect(withConnection(noLossWatch, 'x', 2, 2)).toBeNull();
    expect(unionOfHolders([{ server: 's3', lossEpoch: 0 }], [{ server: 's1', lossEpoch: 2 }, { server: 's3', lossEpoch: 0 }])).toEqual([{ server: 's1', lossEpoch: 2 }, { server: 's3', lossEpoch: 0 }]);
  });
  it('keeps an entry for every holder of every write acknowledged, in canonical order, numbered only while a FLUSH is in flight', () => {
    // At most `lossEpochsPerServerMax` epochs per server are drawn, so no entries merge and each holder keeps its own.
    const holder = fc.record({ server: fc.constantFrom('s1', 's2', 's3'), lossEpoch: fc.nat({ max: lossEpochsPerServerMax - 1 }) });
    const step = fc.record({ holders: fc.uniqueArray(holder, { maxLength: 3, selector: (drawn) => `${drawn.server}/${drawn.lossEpoch}` }), flushesInFlight: fc.boolean() });
    const seed = runSeed();
    console.log(`loss-watch acknowledged seed=${seed}`);
    fc.assert(fc.property(fc.array(step, { maxLength: 12 }), (steps) => {
      let watch: LossWatch = open('a');
      const seen = new Set<string>();
      for (const { holders, flushesInFlight } of steps) {
        const before = JSON.stringify(watch);
        const next = acknowledged(watch, holders, flushesInFlight);
        expect(JSON.stringify(watch)).toBe(before);
        for (const { server, lossEpoch } of holders) seen.add(`${server}/${lossEpoch}`);
        // Every holder ever acknowledged has its entry (no FLUSH settles here), and no other entry exists.
        expect(new Set(next.unflushed.map((entry) => `${entry.server}/${entry.lossEpoch}`))).toEqual(seen);
        const order = (a: WriteHolder, b: WriteHolder) => (a.server < b.server ? -1 : a.server > b.server ? 1 : a.lossEpoch - b.lossEpoch);
        expect(next.unflushed).toEqual([...next.unflushed].sort(order));
        if (holders.length === 0) {
          // A write no server holds unsynced (FUA, or made durable) leaves the watch as it was.
          expect(next).toBe(watch);
        } else if (!flushesInFlight) {
          expect(next.acks).toBe(0);
          expect(next.unflushed.every((entry) => entry.firstAck === 0 && entry.lastAck === 0)).toBe(true);
        } else {
          // This write is the newest acknowledgement: each of its holders' entries names it.
          for (const { server, lossEpoch } of holders) {
            expect(next.unflushed.find((entry) => entry.server === server && entry.lossEpoch === lossEpoch)!.lastAck).toBe(next.acks);
          }
        }
        watch = next;
      }
    }), { seed, numRuns: 1000 });
  });
});
