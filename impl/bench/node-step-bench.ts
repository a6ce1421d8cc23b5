/**
 * `npm run bench:node-step`: the cost of the pure node step per 4 KiB write,
 * with no sockets or disks, so the figure is the node's own CPU time.
 *
 * Theory of operation. Two scenarios keep `queueDepth` writes in flight, as
 * fio does at QD16 (`BENCH_QD` to change it): "owner", where the server that receives the write owns
 * the page (client.request → data.write → io.done → client.reply), and
 * "forwarded", where a second server forwards every write to the owner
 * (request.forward, the owner's serve, request.answer). Effects are carried
 * out at once and in order by a tiny executor: data I/O completes as
 * `io.done`, peer messages are delivered to the other node. Every reply is
 * checked to be ok, so a broken step cannot look fast. Peer messages travel
 * through the real wire codec (`impl/peer/peer-frame.ts`: encoded into a
 * frame, then decoded from it), as between two server processes, so the
 * forwarded figure includes the header encoding both ways (`BENCH_WIRE=0`
 * hands the message objects over directly, for comparison). It prints the
 * process CPU time per write (all node steps a write needs, the executor's
 * small share and GC included), the best of `BENCH_ROUNDS` rounds: on a
 * shared machine CPU time is steadier than wall time, and the best round the
 * least disturbed. `BENCH_BATCH=n` steps up to n consecutive queued inputs
 * of one server with one `nodeStepMany`, as the TCP runtime steps what it has
 * queued (a turn's requests, then their completions). For the forwarded scenario it also splits the time by
 * server (wall time of each server's steps, codec and executor included:
 * the forwarder's and the owner's share of a forwarded write).
 * `BENCH_PAGES=n` sizes the volume (16 pages of 4 MiB by default): the writes
 * land on random pages, so a record that grows with the pages written shows
 * up as a cost that grows with n (model-tests/node/bounded-records.test.ts).
 */
import { assert } from '../../machines/identifiers.js';
import { labelledMemo } from '../../machines/labelled-memo.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import type { NodeEffect, NodeInput } from '../../machines/node/node-io.js';
import type { NodeState } from '../../machines/node/node-state.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep, nodeStepMany } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import { encodePeerFrameParts, PeerFrameDecoder } from '../peer/peer-frame.js';

const queueDepth = Number(process.env['BENCH_QD'] ?? 16);
const writesMeasured = Number(process.env['BENCH_WRITES'] ?? 100_000);
const roundCount = Number(process.env['BENCH_ROUNDS'] ?? 3);
const throughWire = process.env['BENCH_WIRE'] !== '0';
/** `BENCH_BATCH`: how many queued inputs of one server a step may take (1: one nodeStep per input; the TCP runtime takes whatever is queued). */
const batchInputsMax = Number(process.env['BENCH_BATCH'] ?? 1);
const warmUpWrites = Math.min(20_000, writesMeasured);
const volume: VolumeDefinition = { name: 'local', pageCount: Number(process.env['BENCH_PAGES'] ?? 16), pageSizeBlocks: 8192, blockSizeBytes: 512, piecesPerPage: 4, servers: ['s1'] };
const group = ['s1', 's2'];

interface Scenario {
  readonly name: string;
  /** The server clients talk to. */
  readonly entry: string;
}

function run(scenario: Scenario, writeCount: number, seed: number): { microsecondsPerWrite: number; repliesOk: number; microsecondsPerWriteBySide: Map<string, number> } {
  const nodes = new Map<string, NodeState>();
  for (const self of group) {
    const config = { ...defaultNodeConfig(self, group), traceTransitions: false };
    nodes.set(self, nodeStep(emptyNodeState(config, 1), { type: 'node.start', durable: initialDurableRecords([volume], self) })[0]);
  }
  const pending: Array<[string, NodeInput]> = [];
  const decoders = new Map(group.map((self) => [self, new PeerFrameDecoder()]));
  const wallMsBySide = new Map(group.map((self) => [self, 0]));
  let random = seed;
  let issued = 0;
  let repliesOk = 0;
  const issue = () => {
    random = (random * 1_103_515_245 + 12_345) % 2 ** 31;
    const block = random % (volume.pageCount * volume.pageSizeBlocks / 8);
    const page = Math.floor(block * 8 / volume.pageSizeBlocks);
    issued += 1;
    pending.push([scenario.entry, {
      type: 'client.request', requestId: `w${issued}`, connectionId: 'bench',
      operation: { kind: 'write', pageKey: { volume: volume.name, page }, offsetBlocks: (block * 8) % volume.pageSizeBlocks, lengthBlocks: 8, fua: false },
    }]);
  };
  const execute = (self: string, effect: NodeEffect) => {
    switch (effect.type) {
      case 'data.write': case 'data.read': case 'data.sync':
        pending.push([self, { type: 'io.done', completionId: effect.completionId, ok: true }]);
        return;
      case 'peer.send': {
        if (!throughWire) {
          pending.push([effect.to, { type: 'peer.message', from: self, message: effect.message }]);
          return;
        }
        // The receiver's decoding is the receiver's time, as between two processes.
        const [head] = encodePeerFrameParts({ kind: 'message', message: effect.message }, null);
        const startedMs = performance.now();
        for (const frame of decoders.get(effect.to)!.push(head!)) {
          assert(frame.envelope.kind === 'message', 'a peer frame carries a message');
          pending.push([effect.to, { type: 'peer.message', from: self, message: frame.envelope.message }]);
        }
        const decodeMs = performance.now() - startedMs;
        wallMsBySide.set(effect.to, wallMsBySide.get(effect.to)! + decodeMs);
        wallMsBySide.set(self, wallMsBySide.get(self)! - decodeMs);
        return;
      }
      case 'client.reply':
        assert(effect.outcome.status === 'ok', `write answered ${JSON.stringify(effect.outcome)}`);
        repliesOk += 1;
        if (issued < writeCount) issue();
        return;
      case 'meta.commit':
        if (effect.completionId) pending.push([self, { type: 'io.done', completionId: effect.completionId, ok: true }]);
        return;
      default: return;
    }
  };
  const cpuBefore = process.cpuUsage();
  for (let index = 0; index < queueDepth; index += 1) issue();
  for (let head = 0; head < pending.length;) {
    const [self, input] = pending[head]!;
    const startedMs = performance.now();
    // Up to `batchInputsMax` queued inputs for the same server go through one step, as the runtime steps what it has queued.
    const batch = [input];
    while (batch.length < batchInputsMax && head + batch.length < pending.length && pending[head + batch.length]![0] === self) batch.push(pending[head + batch.length]![1]);
    head += batch.length;
    const [state, effects] = batch.length === 1 ? nodeStep(nodes.get(self)!, input) : nodeStepMany(nodes.get(self)!, batch);
    nodes.set(self, state);
    for (const effect of effects) execute(self, effect);
    wallMsBySide.set(self, wallMsBySide.get(self)! + performance.now() - startedMs);
    if (head > 100_000) { pending.splice(0, head); head = 0; }
  }
  const cpu = process.cpuUsage(cpuBefore);
  assert(repliesOk === writeCount, `every write answered (${repliesOk} of ${writeCount})`);
  const microsecondsPerWriteBySide = new Map([...wallMsBySide].map(([self, wallMs]) => [self, (wallMs * 1000) / writeCount]));
  return { microsecondsPerWrite: (cpu.user + cpu.system) / writeCount, repliesOk, microsecondsPerWriteBySide };
}

const seed = Number(process.env['BLOCKSHIFT_SEED'] ?? 1);
// BENCH_NO_MEMO=1: every routing start and step run by the machine itself, for comparison.
labelledMemo.enabled = process.env['BENCH_NO_MEMO'] !== '1';
console.log(`node step per 4 KiB write, QD${queueDepth}, ${writesMeasured} writes, up to ${batchInputsMax} inputs per step, best of ${roundCount} rounds, CPU µs per write, routing memo ${labelledMemo.enabled ? 'on' : 'off'}, peer messages ${throughWire ? 'through the wire codec' : 'handed over as objects'}, seed=${seed}`);
for (const scenario of [{ name: 'owner', entry: 's1' }, { name: 'forwarded', entry: 's2' }]) {
  run(scenario, warmUpWrites, seed);
  const rounds = Array.from({ length: roundCount }, () => run(scenario, writesMeasured, seed));
  const best = rounds.reduce((least, round) => (round.microsecondsPerWrite < least.microsecondsPerWrite ? round : least));
  const sides = scenario.entry === 's1' ? '' : `  (of which wall µs: forwarder s2 ${best.microsecondsPerWriteBySide.get('s2')!.toFixed(1)}, owner s1 ${best.microsecondsPerWriteBySide.get('s1')!.toFixed(1)})`;
  console.log(`${scenario.name.padEnd(10)} ${best.microsecondsPerWrite.toFixed(1)} µs per write (rounds: ${rounds.map((round) => round.microsecondsPerWrite.toFixed(1)).join(', ')})${sides}`);
}
// With the memo on, it must be what serves these writes, or the figures mean something else.
console.log(`routing memo: ${labelledMemo.hits} hits, ${labelledMemo.misses} misses`);
