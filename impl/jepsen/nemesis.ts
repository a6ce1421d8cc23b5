/**
 * The faults of a run, one at a time, at random intervals:
 *
 *   kill        kill -9 a server, restart it after a short pause
 *   power-loss  the same, but the servers run with BLOCKSHIFT_POWER_LOSS=1,
 *               so the kill also loses writes not yet synced; every kill of
 *               a power-loss run is recorded in the history as a `crash`
 *   pause       SIGSTOP a server, SIGCONT it a little later
 *   partition   cut links between servers at the proxies (isolate one
 *               server, split one pair, or cut one direction), then heal
 *   move        start a unit or piecewise move of a random page to a random
 *               server via the admin API; when kills are enabled, half of
 *               the moves also kill the source or the destination once the
 *               source logs a chosen stage durable
 *
 * Moves started without a kill run on while later faults happen. Every
 * action is logged with its time so the timeline can show it.
 */
import type { HistoryRecorder } from './history-recorder.js';
import type { JepsenGroup } from './jepsen-group.js';
import { sleep } from './jepsen-group.js';
import type { LinkProxies } from './link-proxy.js';
import { noBlock } from '../history/history-event.js';
import type { RandomSource } from '../history/random-source.js';

export const nemesisKinds = ['kill', 'pause', 'partition', 'move', 'power-loss'] as const;
export type NemesisKind = (typeof nemesisKinds)[number];

export interface NemesisEvent {
  readonly kind: NemesisKind | 'move-kill';
  readonly startNs: number;
  endNs: number;
  readonly description: string;
}

export interface NemesisOptions {
  readonly group: JepsenGroup;
  readonly proxies: LinkProxies;
  readonly recorder: HistoryRecorder;
  readonly random: RandomSource;
  readonly kinds: readonly NemesisKind[];
  readonly volume: string;
  readonly pageCount: number;
  /** Resolves on the next server output line that matches, or rejects after the time-out. */
  readonly waitForLine: (pattern: RegExp, timeoutMs: number) => Promise<string>;
  readonly log: (line: string) => void;
}

export class Nemesis {
  readonly events: NemesisEvent[] = [];
  readonly counts: Record<NemesisKind | 'move-kill' | 'move-refused' | 'restart-failed', number> = { kill: 0, pause: 0, partition: 0, move: 0, 'power-loss': 0, 'move-kill': 0, 'move-refused': 0, 'restart-failed': 0 };
  readonly #options: NemesisOptions;
  readonly #powerLoss: boolean;
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  #crashes = 0;

  constructor(options: NemesisOptions) {
    this.#options = options;
    this.#powerLoss = options.kinds.includes('power-loss');
  }

  start(): void {
    if (this.#options.kinds.length === 0) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { random } = this.#options;
    // Every enabled kind goes first once, in a random order, so even a short run exercises each.
    const firstRound = [...this.#options.kinds].sort(() => random.next() - 0.5);
    while (this.#running) {
      await sleep(random.between(300, 1_200));
      if (!this.#running) break;
      const kind = firstRound.shift() ?? random.pick(this.#options.kinds);
      try {
        await this.#act(kind);
      } catch (error) {
        this.#options.log(`nemesis ${kind} failed: ${(error as Error).message}`);
      }
    }
  }

  async #act(kind: NemesisKind): Promise<void> {
    const { group, proxies, random } = this.#options;
    const servers = group.serverIds;
    switch (kind) {
      case 'kill':
      case 'power-loss': {
        const victim = random.pick(servers);
        const event = this.#begin(kind, `kill -9 ${victim}${this.#powerLoss ? ' (power loss)' : ''}`);
        await this.#killAndRestart(victim, random.between(100, 1_000));
        this.#end(event);
        return;
      }
      case 'pause': {
        const victim = random.pick(servers);
        const durationMs = random.between(300, 2_500);
        const event = this.#begin(kind, `SIGSTOP ${victim} for ${durationMs} ms`);
        group.pause(victim);
        await sleep(durationMs);
        group.resume(victim);
        this.#end(event);
        return;
      }
      case 'partition': {
        const durationMs = random.between(500, 3_000);
        const shape = random.below(3);
        const [a, b] = [...servers].sort(() => random.next() - 0.5) as [string, string];
        const links: Array<[string, string]> = shape === 0
          ? servers.filter((other) => other !== a).flatMap((other): Array<[string, string]> => [[a, other], [other, a]])
          : shape === 1 ? [[a, b], [b, a]] : [[a, b]];
        const event = this.#begin(kind, `cut ${links.map(([from, to]) => `${from}->${to}`).join(' ')} for ${durationMs} ms`);
        for (const [from, to] of links) proxies.cut(from, to);
        await sleep(durationMs);
        for (const [from, to] of links) proxies.heal(from, to);
        this.#end(event);
        return;
      }
      case 'move':
        await this.#move();
        return;
    }
  }

  async #move(): Promise<void> {
    const { group, random, volume } = this.#options;
    const page = random.below(this.#options.pageCount);
    const pageText = `${volume}/${page}`;
    const source = await this.#ownerOf(pageText);
    if (!source) {
      this.counts['move-refused'] += 1;
      return;
    }
    const destination = random.pick(group.serverIds.filter((id) => id !== source));
    const kind = random.chance(0.5) ? 'piecewise' : 'unit';
    const killEnabled = this.#options.kinds.includes('kill') || this.#powerLoss;
    const timedKill = killEnabled && random.chance(0.5);
    const stage = kind === 'piecewise' ? random.between(2, 9) : random.between(2, 3);
    const stageDurable = timedKill ? this.#options.waitForLine(new RegExp(`^\\[${source}\\] checkpoint ${pageText} stage ${stage} attempt \\d+ durable`), 10_000) : null;
    stageDurable?.catch(() => undefined);
    try {
      await group.admin(source, '/moves', { volume, page, to: destination, kind });
    } catch (error) {
      this.counts['move-refused'] += 1;
      this.#options.log(`move ${pageText} ${source}->${destination} refused: ${(error as Error).message}`);
      return;
    }
    const event = this.#begin('move', `${kind} move ${pageText} ${source}->${destination}${timedKill ? `, kill at stage ${stage}` : ''}`);
    this.#end(event);
    if (!stageDurable) return;
    try {
      await stageDurable;
    } catch {
      return;
    }
    const victim = random.pick([source, destination]);
    const killEvent = this.#begin('move-kill', `kill -9 ${victim} (move ${pageText} stage ${stage} durable)${this.#powerLoss ? ' (power loss)' : ''}`);
    await this.#killAndRestart(victim, random.between(100, 600));
    this.#end(killEvent);
  }

  async #ownerOf(pageText: string): Promise<string | null> {
    const { group } = this.#options;
    for (const id of group.serverIds) {
      if (!group.isRunning(id) || group.isPaused(id)) continue;
      const status = await group.status(id).catch(() => null);
      if (status?.copies[pageText]?.startsWith('valid') && !status.moves.some((move) => move.page === pageText)) return id;
    }
    return null;
  }

  /**
   * A crash of a running server, recorded as one under the power-loss model;
   * a server that is not running (an earlier restart failed) is only started
   * again: recording a crash of nothing let every unflushed write roll back
   * in the checker (a review found it). A restart that fails is counted: the
   * run cannot pass with it.
   */
  async #killAndRestart(victim: string, downMs: number): Promise<void> {
    const { group, recorder } = this.#options;
    if (group.isRunning(victim)) {
      const crashId = this.#powerLoss ? recorder.invoke({ process: -1, connection: -1, f: 'crash', block: noBlock, value: this.#crashes++ }) : null;
      await group.kill(victim);
      if (crashId !== null) recorder.complete(crashId, -1, 'ok');
      await sleep(downMs);
    }
    try {
      await group.start(victim);
    } catch (error) {
      this.counts['restart-failed'] += 1;
      throw error;
    }
  }

  #begin(kind: NemesisEvent['kind'], description: string): NemesisEvent {
    const event: NemesisEvent = { kind, startNs: this.#options.recorder.nowNs(), endNs: Infinity, description };
    this.events.push(event);
    if (kind !== 'move-kill') this.counts[kind] += 1;
    else this.counts['move-kill'] += 1;
    this.#options.log(`nemesis: ${description}`);
    return event;
  }

  #end(event: NemesisEvent): void {
    event.endNs = this.#options.recorder.nowNs();
  }
}
