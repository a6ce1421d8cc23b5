import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { referenceBound } from '../world/world-config.js';
import type { WorldConfig } from '../world/world-config.js';
import { brokenVariants } from './broken-variants.js';
import { explore } from './explore.js';

// Liveness is checked from every state the search reaches, not from a sample: at these bounds that costs about as much
// as the search itself (the fair heal reuses the step memo). A sample of 50 missed a livelock reachable from a handful
// of states (a unit move's source restarted below its destination's attempt, pinned below), which every-state
// checking finds in 2 s.
const options = { statesMax: 2_000_000, depthMax: 500, livenessSamples: Number.MAX_SAFE_INTEGER, livenessEvery: 1, livenessStepsMax: 2_000 };
const small = (changes: Partial<WorldConfig>): WorldConfig => ({ ...referenceBound, servers: 2, writes: 1, reads: 0, crashes: 0, ...changes });

/**
 * Exhaustive runs at bounds small enough for CI. Each pins its state count
 * (a change in the model shows up as a changed count to explain), must
 * exhaust its bounds, hold every property and reach every goal. (The counts
 * fell, e.g. 22,523 to 13,287, when the goals met left the fingerprint:
 * worlds that differ only in which goals their paths met are one state; to
 * 6,927 when servers let go of the bytes of messages they had written and of
 * client writes they had answered, instead of holding them for ever; and to
 * 6,416 when answered client operations left the fingerprint; and, e.g., to
 * 6,415 when handing a piece to the destination became a step of its own
 * (the parts in flight drain, the destination confirms, requests wait
 * meanwhile) and a unit move interrupted after its copy began to park
 * requests, and a commit may be refused and the page copied again; and rose,
 * e.g. to 8,033, when write acknowledgements began to name the servers that
 * hold the write unsynced and each server to keep, per volume, the holders no
 * FLUSH has covered (machines/node/loss-watch.ts): worlds that differ only in
 * who held an acknowledged write are no longer one state; and moved again, e.g.
 * to 9,254, when a destination began to serve the pieces handed over to it,
 * and a page it has committed, itself rather than through the source, and a
 * source whose destination has committed to send requests there rather than
 * hold them until its own flip is durable; and rose, e.g. to 10,913, when a
 * piece's hand-over stopped holding the piece's writes (they reach both sides)
 * and a piecewise move's source began to send its clients' requests to the
 * destination as soon as move.commit is sent, and fewer where only a stale
 * answer's fresh view of the local copy now counts (unit moves); and rose,
 * e.g. to 11,287, when an attempt of the same move began to keep the block
 * versions, a part of a write the destination already ran as a forwarded
 * request began to be acknowledged without running it again, and a part of a
 * write to a piece the destination serves itself stopped being sent again
 * (it fails with EIO, outcome unknown, after the forward time-out). Serving
 * a piece not yet handed over finds a non-linearizable read in 6 steps; its
 * own writes without a version above the parts it applied
 * (`directWriteSequence`) let a duplicated copy chunk take back a write
 * (two writes on a duplicating network, 23 steps); and rose, e.g. to 12,929,
 * when moves could be abandoned (move-setup.ts): a restarted server asks the
 * source of a copy it is still receiving for the page's route, a source tells a
 * destination acknowledging data of a move it no longer runs there its route,
 * and Table 1's records keep that a commit was asked; and rose, e.g. from
 * 13,964 to 15,079 and from 167,185 to 234,609, with the incarnation fence
 * (machines/node/incarnation-fence.ts): a restarted server answers a cancel
 * of a try it knows nothing of only once the other members have confirmed
 * its fence, and those messages and confirmations are new states.
 * Configurations without a crash kept their counts: a first incarnation
 * needs no fence. They rose again, e.g. from 15,079 to 15,195, when a
 * request's retries began to be charged only when they learnt nothing newer
 * (`retriesCharged`, request-routing.machine.ts: the explorer's new property,
 * that no client sees a routing error while no fault has happened, found a
 * write answered EIO as its page moved away and back), and fell from 349,222
 * to 302,661 with forwarding pointers, which a server no longer follows when
 * they are older than its table; and rose, e.g. from 302,661 to 304,129 and
 * from 190,790 to 191,837, when a stale answer or a look-up again began to see
 * a committed destination's copy valid as a new request does (node.ts,
 * `#routingView`): requests it failed with "no valid copy" now go on.)
 *
 * The four configurations before the last two configurations combine a crash with a read, which no
 * configuration did before: the settled audit alone cannot tell a write lost
 * in flight from one never acknowledged, but a read that saw it can. They
 * found (before the fixes they pin) a unit move committing a copy that missed
 * a dual write the source had served and lost in its crash, a piece handed to
 * the destination while such a dual write was still on its way, and, with
 * power cuts and unflushed writes, a restarted source serving what its cut
 * left before the destination took over with the value the cut had lost, and
 * a destination taking a piece's reads after a cut took a dual write it had
 * acknowledged.
 */
/** The goals a configuration without moves cannot reach. */
const noMoveGoals = ['a move completes', 'a write lands on the destination during dual-write', 'a crash at every stage of the move, and the move still completes', 'a stale routing table causes a retry'];

const exhaustive: Array<[string, WorldConfig, number, string[]]> = [
  ['piecewise move, a write, a crash of either side, unordered network', small({ crashes: 1 }), 15_195, []],
  // A read forwarded to the owner of a 2-piece page, then its forwarder crashes: the owner still serves the read, and
  // which block it reads is in its request alone. Before the fingerprint held a request's operation this search merged
  // reads of block 0 and block 1 and kept 3,388 states (fingerprint-audit.ts found it: the answers differ), then 3,425;
  // 3,832 once servers kept a record of each client connection for FLUSH's loss reports (loss-watch.ts).
  ['a read through the non-owner of a 2-piece page, a crash of either side', small({ writes: 0, reads: 1, crashes: 1 }), 5_030, ['a write lands on the destination during dual-write']],
  ['unit move, a write, a crash of either side, unordered network', small({ crashes: 1, moveKinds: ['unit'] }), 9_542, []],
  ['a write and a read while the page moves', small({ reads: 1 }), 17_379, []],
  // Three servers: s2 and s3 are interchangeable, so symmetry keeps one world per mirror pair.
  ['three servers: a write through any server while the page moves', small({ servers: 3 }), 1_236, []],
  ['forwarding-pointer mode, three servers', small({ servers: 3, forwardingPointer: true }), 1_304, []],
  // Even on a FIFO network a request forwarded to the source during the flip waits there and is answered stale afterwards.
  ['ordered network, both kinds of move', small({ network: 'ordered', moveKinds: ['unit', 'piecewise'] }), 666, []],
  ['duplicating network', small({ network: 'duplicating', networkFaults: 1 }), 7_769, []],
  ['lossy network', small({ network: 'lossy', networkFaults: 1 }), 3_985, []],
  // A crash is a power cut: page data not yet durable is lost. (Breaking the destination's sync before piece.stored
  // makes this configuration find a lost acknowledged write in 17 steps; kill -9 semantics do not.)
  // 7,138 until a page's record of local writes in flight lost its entry once empty (an empty list and no entry had
  // been two states that behave alike; the fingerprint audit finds no unexplained merge at 7,056).
  ['power loss: a crash of either side loses unsynced page data', small({ crashes: 1, powerLoss: true }), 14_007, []],
  // Per-move piece count: the volume is cut into 4 granules (one block each) and the move asks for 2 pieces, so routing,
  // copy offsets and the restart stages follow the move's geometry, not the volume's. (Copying granule-sized pieces
  // instead of the move's makes this configuration find a lost write.)
  ['a 2-piece move of a page cut into 4 granules, a write, a crash of either side', small({ crashes: 1, pieces: 4, movePieces: 2 }), 31_794, []],
  // A write, a read and a crash, on pages of one piece over FIFO links (about 5 s each). Each finds a non-linearizable
  // block when its fix is taken out: the unit move without the destination's refusal to commit a copy it did not take
  // in this incarnation (14 steps), the piecewise move without the piece hand-over waiting for the parts in flight (14).
  ['unit move, a write, a read, a crash of either side', small({ pieces: 1, reads: 1, crashes: 1, moveKinds: ['unit'], network: 'ordered' }), 44_129, []],
  ['piecewise move, a write, a read, a crash of either side', small({ pieces: 1, reads: 1, crashes: 1, network: 'ordered' }), 49_838, []],
  // Power cuts with unflushed client writes. Without the fence on a unit move interrupted after its copy, a restarted
  // source serves what its cut left, then the flip brings back the value the cut lost (15 steps; kill -9 cannot). With a
  // crashed server's sent messages still delivered, as TCP may: without the destination confirming a piece hand-over,
  // it acknowledges a dual write, loses it in a cut, and still takes the piece's reads (19 steps).
  ['power cut, unflushed writes: unit move, a write, a read, a crash of either side', small({ pieces: 1, reads: 1, crashes: 1, moveKinds: ['unit'], network: 'ordered', powerLoss: true, unflushedWrites: true }), 52_796, []],
  ['power cut, unflushed writes, sent messages outlive a crash: piecewise move, a write, a read, a crash', small({ pieces: 1, reads: 1, crashes: 1, network: 'ordered', powerLoss: true, unflushedWrites: true, crashKeepsSent: true }), 62_775, []],
  // FLUSH after a power cut. Before write acknowledgements carried the holders' loss epochs, a FLUSH through one server
  // answered ok after the owner's cut took the write it covered (the owner restarted, synced what was left, and said
  // ok), and the settled audit found the write gone (8 steps). Comparing epochs only against a departed server's, so a
  // restarted holder passes, finds the same in both configurations. (27 Nov: a member silent for a retry period that
  // holds none of a FLUSH's writes is excused, once a barrier in which every member synced has completed since the
  // server started; the counts rose, e.g. 51,569 to 54,316 and 4,854 to 5,870, with that flag and the excused members
  // in the state.)
  ['power cut, unflushed writes, a FLUSH: unit move, a write, a crash of either side', small({ pieces: 1, crashes: 1, moveKinds: ['unit'], network: 'ordered', powerLoss: true, unflushedWrites: true, flushes: 1 }), 60_578, []],
  // (31,142 before empty in-flight records were dropped, as above.)
  ['power cut, unflushed writes, a FLUSH: piecewise move, a write, a crash of either side', small({ pieces: 1, crashes: 1, network: 'ordered', powerLoss: true, unflushedWrites: true, flushes: 1 }), 60_324, []],
  // Commits nobody waits for (learnt routes, a finished move's record removed) may be lost in a crash, as in the TCP
  // runtime, which hands them to the store and goes on (unawaited-commits.test.ts shows such crashes are explored). With
  // two moves this found a liveness gap, now closed and checked there: a restarted source that lost its finished move's
  // record removal confirmed the commit again and waited forever once the page had moved on.
  ['unawaited commits a crash may lose: piecewise move, a write, a crash of either side', small({ crashes: 1, unawaitedCommitsLost: true }), 20_947, []],
  ['unawaited commits a crash may lose: unit move, a write, a read, a crash of either side', small({ pieces: 1, reads: 1, crashes: 1, moveKinds: ['unit'], network: 'ordered', unawaitedCommitsLost: true }), 60_862, []],
  // A metadata commit fails (the store skips it and goes on, and tells the node, which may be waiting for it or not). A
  // finished move's record whose removal failed used to stay until the next restart (with two moves the explorer found
  // the group never settled: unawaited-commits.test.ts); the node now removes it again.
  ['a metadata commit fails: piecewise move, a write, a crash of either side', small({ crashes: 1, commitFailures: 1 }), 91_008, []],
  ['a metadata commit fails: unit move, a write, a crash of either side', small({ pieces: 1, crashes: 1, moveKinds: ['unit'], network: 'ordered', commitFailures: 1 }), 28_842, []],
  // A page-data write fails (`disk.fail` arms a server; its next `data.write` completes ok: false, the page unchanged).
  // Without the destination withdrawing the block versions a failed write marked (node.ts, `#withdrawClaim`), this
  // finds the reviewer's lost write in 24 steps: two dual writes to one block, the newer part fails at the destination,
  // the older is skipped there for the newer's mark and answered written, and the destination commits without it.
  ['a page-data write fails: piecewise move of one piece, two writes', small({ pieces: 1, writes: 2, dataWriteFailures: 1 }), 29_576, []],
  // Two writes held by the same server, the second acknowledged while the FLUSH covering the first is in flight. When a
  // holder's entry kept only its newest acknowledgement, the second write took the first out of the FLUSH's cover, and
  // the FLUSH answered ok after the owner's cut took both (12 steps).
  ['power cut, unflushed writes, a FLUSH between two writes, a crash', small({ pieces: 1, writes: 2, moves: 0, crashes: 1, powerLoss: true, unflushedWrites: true, flushes: 1 }), 10_430, noMoveGoals],
  // Two FLUSHes in flight on one connection. When only the connection's errseq count decided, the later FLUSH found the
  // loss, took the lost write's entry away and failed, and the earlier one then answered ok over the same lost write
  // (10 steps; the deep random walk found it first, with moves and three servers).
  ['power cut, unflushed writes, two FLUSHes in flight, a crash', small({ pieces: 1, moves: 0, crashes: 1, powerLoss: true, unflushedWrites: true, flushes: 2 }), 7_531, noMoveGoals],
  // Two writes and two FLUSHes: when a FLUSH that found a loss dropped the holder's entry whole, a write acknowledged
  // while it was in flight, lost in the same cut, went unreported, and the next FLUSH answered ok (15 steps; a review
  // found it).
  ['power cut, unflushed writes, two writes and two FLUSHes, a crash', small({ pieces: 1, writes: 2, moves: 0, crashes: 1, powerLoss: true, unflushedWrites: true, flushes: 2 }), 131_157, noMoveGoals],
  // Two crashes of a unit move. A restart into the commit takes the checkpoint's attempt + 1 without persisting it, a
  // refused commit copies again under the next, whose dual write the destination follows, and a second crash restarts
  // the source below it. While the destination ignored a commit of an older attempt, the move hung (14 steps, found by
  // checking liveness from every state; the fault harness had found it in CI first). The destination now answers it.
  ['unit move, a write, two crashes', small({ pieces: 1, crashes: 2, moveKinds: ['unit'] }), 34_990, []],
  // Three servers, the page moved on by its destination. A source whose destination has committed answered the
  // destination's own forwarded request stale, naming it owner at the new epoch, before its flip was durable; the
  // destination took that for the flip, moved the page on, and the source crashed, restarted the move and asked to
  // commit for ever, with three valid copies (21 steps). The source now holds such a request until its flip.
  ['three servers, two unit moves, a write, a crash', small({ servers: 3, pieces: 1, moves: 2, crashes: 1, moveKinds: ['unit'] }), 191_837, []],
  // The same with forwarding pointers: a client's write forwarded to the owner came back, by the pointer, to the server
  // it entered at, its bytes named as that server's own token for the same request; the first of the two requests to
  // finish let go of the bytes the other still had to write (21 steps, a failed assertion in the simulator). A
  // receiver now names the bytes a message brings after their sender (received-data-token.ts).
  ['forwarding pointers, three servers, two unit moves, a write, a crash', small({ servers: 3, pieces: 1, moves: 2, crashes: 1, moveKinds: ['unit'], forwardingPointer: true }), 304_129, []],
  // Three moves of one page over three servers, so a page moves on twice from where it arrived and stale routes reach a
  // third table, over a network that may lose a message (found nothing when first run, 26 Nov; larger three-move bounds
  // are in the README's sweeps).
  ['lossy network, three servers, three unit moves, a write', small({ servers: 3, pieces: 1, moves: 3, moveKinds: ['unit'], network: 'lossy', networkFaults: 1 }), 284_817, []],
  // Time-outs racing what they wait for: every other configuration fires a timer only once the group is quiet (no
  // message in flight, every server up, no commit pending), so a retry never overtook the answer it retried, nor a
  // move restart a peer still down. Here two time-outs may fire at any point (then timers wait for quiet again, or
  // retries would make the space infinite). Found nothing when first run (27 Nov); the random walks race timers without
  // bound.
  // Abandoning (machines/migration/move-setup.ts): the administrator may give the move up whenever no stage is being
  // recorded; the machine accepts only while the source alone holds the page's data. Found, before the fixes they pin:
  // a destination's copy begun by a message the source sent before it abandoned, left receiving for ever (three
  // servers, two unit moves, a crash), and released data left on disk by a crash before its record was durable.
  ['abandoning a piecewise move: a write, a crash of either side', small({ crashes: 1, abandons: 1 }), 30_698, []],
  ['abandoning a unit move: a write, a read, a crash of either side', small({ pieces: 1, reads: 1, crashes: 1, abandons: 1, moveKinds: ['unit'], network: 'ordered' }), 97_623, []],
  ['abandoning, then moving the page again: two piecewise moves, a write, a crash', small({ crashes: 1, abandons: 1, moves: 2 }), 602_027, []],
  // Pieces copied in two chunks each (`--chunk-blocks 1`): every other configuration copies a piece in one chunk, and so
  // could not see a chunk acknowledged by an abandoned move's destination counted toward the next move of the page
  // (a review found it: an acknowledged write lost). With answers about a move not checked for its epoch, this finds
  // the lost write in 24 steps.
  ['abandoning, then moving again, pieces copied in two chunks: two piecewise moves, a write', small({ pieces: 2, movePieces: 1, copyChunkBlocks: 1, moves: 2, abandons: 1 }), 227_554, []],
  ['time-outs racing other events (two of them): piecewise move, a write, a crash of either side', small({ crashes: 1, timersOnlyWhenQuiet: false, earlyTimersMax: 2 }), 473_289, []],
  // A write whose forward timed out was failed at once (EIO) while the forward could still run: it landed over a write
  // acknowledged since (5 steps; the register check had let a failed write take effect at any later time). It is
  // failed now only once its target has cancelled the try (request-routing.machine.ts, `cancelling`), and a try that
  // arrives after its cancel is refused (the goal: the explorer's `fail-write-while-forward-may-run` is the trace).
  ['a forward\'s time-out racing it: two writes and a read, through either server, a crash', small({ writes: 2, reads: 1, moves: 0, crashes: 1, timersOnlyWhenQuiet: false, earlyTimersMax: 1 }), 234_609, noMoveGoals],
];

describe('exhaustive exploration of the group', () => {
  it.each(exhaustive)('%s', (_name, config, pinnedStates, unreachableGoals) => {
    const result = explore(config, options);
    console.log(`${_name}: ${result.states} states, ${result.transitions} transitions, depth ${result.depth}, ${result.seconds.toFixed(1)} s; goals ${JSON.stringify(result.goals)}`);
    expect(result.violation).toBeNull();
    expect(result.livenessFailure).toBeNull();
    expect(result.complete).toBe(true);
    expect(result.livenessChecked, 'liveness checked from every state but the initial one').toBe(result.states - 1);
    for (const [goal, reached] of Object.entries(result.goals)) expect(reached, goal).toBe(!unreachableGoals.includes(goal));
    if (pinnedStates > 0) expect(result.states).toBe(pinnedStates);
    else expect(result.states).toBeGreaterThan(100);
    // The largest of these takes about 55 s alone on a 2-core host and timed out at the default 120 s in a CI run that
    // shared the host with other work: the bound that ends every run here is the state count, not the clock.
  }, 300_000);
});

/**
 * A bound too large to check liveness from every state in CI: exhausted, every
 * goal reached, liveness from 1,000 states drawn evenly from the visited ones.
 * A FLUSH excuses a silent member holding none of its writes only once a
 * barrier in which every member synced has completed since the server
 * started (machines/node/flush-barrier.ts), so only with two FLUSHes does a
 * world reach an excuse; only a move's dual write has a holder other than
 * the server that answers the client. With the destination left out of its
 * dual write's holders, this finds a FLUSH answered ok over a write a power
 * cut then took (1,566,661 states, 28 steps: the destination was excused;
 * 2,008,189 states since the incarnation fence, past the 2,000,000 the other
 * searches here stop at);
 * a review found that the pinned configurations above could not.
 */
describe('exhaustive exploration at a larger bound, liveness from sampled states', () => {
  it('power cut, unflushed writes, two FLUSHes: a piecewise move of two pieces, a write, a crash, ordered network', () => {
    const config = small({ pieces: 2, crashes: 1, network: 'ordered', powerLoss: true, unflushedWrites: true, flushes: 2 });
    const result = explore(config, { ...options, statesMax: 3_000_000, livenessSamples: 1_000, livenessEvery: 53 });
    console.log(`two FLUSHes, two pieces: ${result.states} states, ${result.transitions} transitions, depth ${result.depth}, ${result.seconds.toFixed(1)} s; liveness from ${result.livenessChecked} states; goals ${JSON.stringify(result.goals)}`);
    expect(result.violation).toBeNull();
    expect(result.livenessFailure).toBeNull();
    expect(result.complete).toBe(true);
    expect(result.livenessChecked).toBe(1_000);
    for (const [goal, reached] of Object.entries(result.goals)) expect(reached, goal).toBe(true);
    expect(result.states).toBe(2_009_589);
  }, 300_000);
});

describe('the properties bite: every deliberately broken machine is caught with a short trace', () => {
  const cases: Array<[string, WorldConfig]> = [
    ['dual-write-one-side', small({ reads: 1 })],
    ['flip-before-copy-durable', small({ reads: 1 })],
    ['restart-one-piece-late', small({ crashes: 1, writes: 0 })],
    // Its request loops over the invalid copy until its retries run out (a routing error, caught first otherwise).
    ['serve-from-invalid-copy', small({ writes: 1, routingErrorsAllowed: true })],
    ['source-copy-stays-valid', small({ writes: 1 })],
    ['abandon-after-hand-over', small({ reads: 1, abandons: 1 })],
    ['abandon-after-commit-asked', small({ pieces: 1, reads: 1, abandons: 1, moveKinds: ['unit'] })],
    ['fail-write-while-forward-may-run', small({ writes: 2, reads: 1, moves: 0, timersOnlyWhenQuiet: false, earlyTimersMax: 1 })],
    ['charge-every-retry', small({ servers: 3, pieces: 1, moves: 2 })],
  ];
  it.each(cases)('%s', (variant, config) => {
    const result = explore({ ...config, variant }, options);
    const expected = brokenVariants[variant]?.expectedProperty ?? '';
    console.log(`${variant}: caught after ${result.states} states: ${result.violation?.property}: ${result.violation?.detail} (${result.violation?.trace.length} steps)`);
    expect(result.violation?.property).toContain(expected);
    expect(result.violation?.trace.length).toBeLessThan(30);
  });
});

describe('counterexamples replay', () => {
  it('the CLI writes a trace that --replay reproduces, and exits 1 on a violation and 2 on bad arguments', () => {
    const out = mkdtempSync(join(tmpdir(), 'blockshift-check-'));
    const run = (args: string[]) => {
      try {
        return { status: 0, output: execFileSync('npx', ['tsx', 'model-tests/explorer/cli.ts', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
      } catch (error) {
        const failure = error as { status: number; stdout: string; stderr: string };
        return { status: failure.status, output: failure.stdout + failure.stderr };
      }
    };
    const found = run(['--servers', '2', '--writes', '1', '--reads', '1', '--crashes', '0', '--variant', 'dual-write-one-side', '--out', out]);
    expect(found.status).toBe(1);
    expect(found.output).toContain('VIOLATION');
    const trace = JSON.parse(readFileSync(join(out, 'counterexample.json'), 'utf8')) as { actions: unknown[] };
    expect(trace.actions.length).toBeGreaterThan(3);
    expect(readFileSync(join(out, 'counterexample.mmd'), 'utf8')).toContain('sequenceDiagram');
    const replayed = run(['--replay', join(out, 'counterexample.json')]);
    expect(replayed.status).toBe(1);
    expect(replayed.output).toContain('VIOLATION');
    expect(run(['--servers', 'many']).status).toBe(2);
    expect(run(['--network', 'carrier-pigeon']).status).toBe(2);
  });
});
