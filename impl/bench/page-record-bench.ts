/**
 * `npm run bench:page-records`: the cost of a node step that changes one of a
 * node's per-page records, against the size of the volume, with no sockets or
 * disks (the node's own CPU time).
 *
 * Theory of operation. A step never edits the state it started from, so a
 * per-page record kept as a plain object was copied whole by every step that
 * changed one page of it (machines/node/page-map.ts now shares all but a
 * chunk). Two steps are timed, each taken again and again from one and the
 * same state so that nothing accumulates between them:
 * - "route": server s2, which knows a volume of `pages` pages owned by s1,
 *   hears `route.update` for one of them at a newer epoch and updates its
 *   route (the push that follows every move, on every server of the group);
 * - "replica": server s1, which holds every page of that volume, hears the
 *   first `piece.copy` of a move of a page of another volume toward it and
 *   starts a receiving copy (one replica added).
 * Each step's effects are checked (the route or replica record persisted), so
 * a broken step cannot look fast. It prints CPU µs per step, the best of
 * `BENCH_ROUNDS` rounds (on a shared machine the best round is the least
 * disturbed), for each size in `BENCH_PAGES` (a comma-separated list; default
 * 1,024, 65,536 and 262,144 pages of 4 MiB), and the time the node took to
 * start with that volume. A round runs for about `BENCH_ROUND_MS` of CPU.
 */
import { assert } from '../../machines/identifiers.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

const pageCounts = (process.env['BENCH_PAGES'] ?? '1024,65536,262144').split(',').map(Number);
const roundCount = Number(process.env['BENCH_ROUNDS'] ?? 3);
const roundCpuMs = Number(process.env['BENCH_ROUND_MS'] ?? 1_000);
const group = ['s1', 's2'];
const incoming: VolumeDefinition = { name: 'incoming', pageCount: 16, pageSizeBlocks: 8192, blockSizeBytes: 512, piecesPerPage: 4, servers: ['s2'] };

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

function started(self: string, volumes: readonly VolumeDefinition[]): { state: NodeState; startMs: number } {
  const config = { ...defaultNodeConfig(self, group), traceTransitions: false };
  const before = cpuMs();
  const state = nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords(volumes, self) })[0];
  return { state, startMs: cpuMs() - before };
}

/** CPU µs per step of `input(i)` from `state`, the best of the rounds; `check` sees every step's effects. */
function time(state: NodeState, input: (index: number) => NodeInput, check: (effects: ReturnType<typeof nodeStep>[1]) => void): { best: number; rounds: number[] } {
  const rounds: number[] = [];
  for (let round = 0; round < roundCount; round += 1) {
    const before = cpuMs();
    let steps = 0;
    while (cpuMs() - before < roundCpuMs || steps < 3) {
      const [, effects] = nodeStep(state, input(steps));
      check(effects);
      steps += 1;
    }
    rounds.push(((cpuMs() - before) * 1000) / steps);
  }
  return { best: Math.min(...rounds), rounds };
}

console.log(`node step changing one per-page record, CPU µs per step, best of ${roundCount} rounds of ~${roundCpuMs} ms`);
for (const pages of pageCounts) {
  const volume: VolumeDefinition = { name: 'big', pageCount: pages, pageSizeBlocks: 8192, blockSizeBytes: 512, piecesPerPage: 4, servers: ['s1'] };
  const router = started('s2', [volume, incoming]);
  const route = time(router.state, (index) => ({
    type: 'peer.message', from: 's1', message: { type: 'route.update', pageKey: { volume: 'big', page: (index * 7_919) % pages }, owner: 's1', epoch: 2 },
  }), (effects) => assert(effects.some((effect) => effect.type === 'meta.commit' && effect.writes.some((write) => write.kind === 'route' && write.route.epoch === 2)), 'the route update is persisted'));
  const holder = started('s1', [volume, incoming]);
  const pieceBlocks = incoming.pageSizeBlocks / incoming.piecesPerPage;
  const replica = time(holder.state, (index) => ({
    type: 'peer.message', from: 's2',
    message: { type: 'piece.copy', pageKey: { volume: 'incoming', page: index % incoming.pageCount }, attempt: 1, epoch: 2, piece: 0, offsetBlocks: 0, lengthBlocks: pieceBlocks, sequence: 1, handedOverBlocks: 0, sourceSequence: 1, dataToken: `t${index}` },
  }), (effects) => assert(effects.some((effect) => effect.type === 'meta.commit' && effect.writes.some((write) => write.kind === 'replica' && write.record.status === 'receiving')), 'the receiving copy is persisted'));
  const figures = (result: { best: number; rounds: number[] }) => `${result.best.toFixed(1)} µs (rounds: ${result.rounds.map((round) => round.toFixed(1)).join(', ')})`;
  console.log(`${String(pages).padStart(7)} pages: route ${figures(route)}; replica ${figures(replica)}; node start ${router.startMs.toFixed(0)} / ${holder.startMs.toFixed(0)} ms (s2 / s1)`);
}
