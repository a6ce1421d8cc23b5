import fc from 'fast-check';
import type { MoveKind } from '../../machines/migration/checkpoint.js';
import type { NetworkMode, WorldConfig } from '../world/world-config.js';
import { referenceBound } from '../world/world-config.js';

/**
 * Bounds deeper than the exhaustive explorer can finish: three servers, two
 * pages of three pieces, four writes, two reads, two moves, two crashes and
 * two network faults. A random walk samples interleavings at these bounds
 * instead of enumerating them, so every dimension can be larger.
 *
 * The arbitrary below draws one configuration per run: the network mode,
 * which move kinds the admin may ask for and whether forwarding pointers are
 * on, the page geometry (granules per page, pieces per move), and what a
 * crash is: kill -9 (the page cache survives), a power cut with clients
 * writing without FUA and sending two FLUSHes (unsynced data is lost; a lost
 * value must never come back, nor may a write a FLUSH answered ok for be
 * lost), or such a cut after which what the crashed server had sent is still
 * delivered (as TCP may); and whether time-outs fire only once nothing else
 * can happen, as in the explorer, or at any step, so that a retry or a move's
 * restart may overtake the answer it gave up on (the exhaustive search cannot
 * afford that beyond a shallow depth: `npm run check -- --timers-anytime`
 * reached depth 16 in 6,000,000 states with two writes); how many metadata
 * commits may fail, and whether commits nobody waits for may be lost in a
 * crash (both left out until 26 Nov, evening, when a review's traces needed a
 * failed commit); and a smaller or busier world now and then (two servers,
 * one page, a third move), where a page's moves follow each other closely: a
 * review found a destination moving a page on before its source had flipped
 * that way, which walks over two pages of three servers did not reach in
 * 30,000 walks and these find in about a thousand; and whether the
 * administrator may abandon moves (up to twice). It shrinks towards the
 * plainest world (unordered network, piecewise moves, no pointer, kill -9,
 * the deep bound's sizes), so a counterexample names only the features it
 * needs.
 */
export const deepBound: WorldConfig = {
  ...referenceBound,
  servers: 3, pages: 2, pieces: 3, writes: 4, reads: 2, moves: 2, crashes: 2, networkFaults: 2,
  network: 'unordered', moveKinds: ['piecewise', 'unit'], forwardingPointer: false, messagesMax: 24,
};

const networkModes: readonly NetworkMode[] = ['unordered', 'duplicating', 'lossy', 'ordered'];
/**
 * The volume's granularity and the piece count each move asks for: the
 * volume's own (first, the shrink target), or a move of fewer, larger pieces
 * than the granules the front end splits requests into (`move --pieces N`).
 */
const geometryChoices: ReadonlyArray<Pick<WorldConfig, 'pieces' | 'movePieces'>> = [{ pieces: 3 }, { pieces: 4, movePieces: 2 }, { pieces: 4, movePieces: 1 }];
const moveKindChoices: ReadonlyArray<readonly MoveKind[]> = [['piecewise'], ['unit'], ['piecewise', 'unit']];
const crashChoices: ReadonlyArray<Pick<WorldConfig, 'powerLoss' | 'unflushedWrites' | 'crashKeepsSent' | 'flushes'>> = [
  {}, { powerLoss: true, unflushedWrites: true, flushes: 2 }, { powerLoss: true, unflushedWrites: true, crashKeepsSent: true, flushes: 2 },
];

/** One deep configuration, with the machine set given by `variant` (null = the real machines). */
export function deepConfigArbitrary(base: WorldConfig = deepBound): fc.Arbitrary<WorldConfig> {
  return fc.record({
    network: fc.constantFrom(...networkModes),
    moveKinds: fc.constantFrom(...moveKindChoices),
    forwardingPointer: fc.boolean(),
    crashes: fc.integer({ min: 0, max: base.crashes }),
    geometry: fc.constantFrom(...geometryChoices),
    crash: fc.constantFrom(...crashChoices),
    timersOnlyWhenQuiet: fc.boolean(),
    commitFailures: fc.constantFrom(0, 1, 2),
    unawaitedCommitsLost: fc.boolean(),
    servers: fc.constantFrom(base.servers, 2),
    pages: fc.constantFrom(base.pages, 1),
    moves: fc.constantFrom(base.moves, base.moves + 1),
    // How often the administrator may abandon a move (0, the shrink target: never).
    abandons: fc.constantFrom(0, 1, 2),
  }).map(({ geometry, crash, ...choice }) => ({ ...base, ...choice, ...geometry, ...crash, networkFaults: choice.network === 'duplicating' || choice.network === 'lossy' ? base.networkFaults : 0 }));
}
