/**
 * The client side of a run: `workerCount` workers, each with one NBD
 * connection to a server picked at random, each doing one operation at a
 * time on a small set of 4 KiB blocks spread over every piece of every page
 * of the volume (so every move and every piece of a piecewise move carries
 * traffic). Operations: read, write (a quarter with FUA), and FLUSH, which
 * makes the connection's earlier writes required durable.
 *
 * Outcomes: a reply is `ok`; an error reply is `fail` for a read and `info`
 * for a write (a failed write promises nothing about the block); a time-out
 * or a dropped connection is `info`, and the worker then reconnects, to a
 * random server again. Workers also hop to another server now and then.
 */
import { NbdClient, NbdErrorReply } from './nbd-client.js';
import { blockBytes, decodeBlock, encodeBlock } from './block-payload.js';
import type { HistoryRecorder } from './history-recorder.js';
import type { JepsenGroup } from './jepsen-group.js';
import { sleep } from './jepsen-group.js';
import { noBlock } from '../history/history-event.js';
import type { RandomSource } from '../history/random-source.js';

export interface WorkloadOptions {
  readonly group: JepsenGroup;
  readonly recorder: HistoryRecorder;
  readonly random: RandomSource;
  readonly exportName: string;
  readonly blocks: readonly number[];
  readonly workerCount: number;
  readonly requestTimeoutMs: number;
}

export interface WorkloadCounters {
  connections: number;
  connectFailures: number;
}

export class Workload {
  readonly counters: WorkloadCounters = { connections: 0, connectFailures: 0 };
  readonly #options: WorkloadOptions;
  #running = false;
  #workers: Promise<void>[] = [];
  #nextWriteId = 1;
  #nextConnection = 1;

  constructor(options: WorkloadOptions) {
    this.#options = options;
  }

  start(): void {
    this.#running = true;
    this.#workers = Array.from({ length: this.#options.workerCount }, (_, process) => this.#worker(process));
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#workers);
  }

  async #worker(process: number): Promise<void> {
    const { group, recorder, requestTimeoutMs } = this.#options;
    const random = this.#options.random.derive(process);
    let client: NbdClient | null = null;
    let connection = 0;
    let server = '';
    let operationsOnConnection = 0;
    while (this.#running && !recorder.full) {
      if (!client || client.isClosed || operationsOnConnection > 300) {
        client?.close();
        client = null;
        server = random.pick(group.serverIds);
        const address = group.nbdAddress(server);
        try {
          client = await NbdClient.connect(address.host, address.port, this.#options.exportName, 2_000);
          connection = this.#nextConnection++;
          operationsOnConnection = 0;
          this.counters.connections += 1;
        } catch {
          this.counters.connectFailures += 1;
          await sleep(50 + random.below(100));
          continue;
        }
      }
      operationsOnConnection += 1;
      const roll = random.next();
      const block = random.pick(this.#options.blocks);
      if (roll < 0.5) {
        const id = recorder.invoke({ process, connection, server, f: 'read', block });
        try {
          const data = await client.read(block * blockBytes, blockBytes, requestTimeoutMs);
          const decoded = decodeBlock(block, data);
          recorder.complete(id, process, 'ok', decoded.value, decoded.note);
        } catch (error) {
          recorder.complete(id, process, error instanceof NbdErrorReply ? 'fail' : 'info', 0, (error as Error).message);
        }
      } else if (roll < 0.92) {
        const writeId = this.#nextWriteId++;
        const fua = random.chance(0.25);
        const id = recorder.invoke({ process, connection, server, f: 'write', block, value: writeId, fua });
        try {
          await client.write(block * blockBytes, encodeBlock(block, writeId), fua, requestTimeoutMs);
          recorder.complete(id, process, 'ok');
        } catch (error) {
          recorder.complete(id, process, 'info', 0, (error as Error).message);
        }
      } else {
        const id = recorder.invoke({ process, connection, server, f: 'flush', block: noBlock });
        try {
          await client.flush(requestTimeoutMs);
          recorder.complete(id, process, 'ok');
        } catch (error) {
          recorder.complete(id, process, error instanceof NbdErrorReply ? 'fail' : 'info', 0, (error as Error).message);
        }
      }
    }
    client?.close();
  }
}

/**
 * Reads every block once through one fresh connection to `server`, recorded
 * as final reads (process `process`). Retries a refused connection a few
 * times, since the server may still be settling.
 */
export async function finalReads(group: JepsenGroup, recorder: HistoryRecorder, server: string, process: number, exportName: string, blocks: readonly number[], requestTimeoutMs: number): Promise<number> {
  const address = group.nbdAddress(server);
  let client: NbdClient | null = null;
  for (let attempt = 0; attempt < 20 && !client; attempt += 1) {
    client = await NbdClient.connect(address.host, address.port, exportName, 5_000).catch(() => null);
    if (!client) await sleep(250);
  }
  let failures = 0;
  const connection = 1_000_000 + process;
  for (const block of blocks) {
    const id = recorder.invoke({ process, connection, server, f: 'read', block, final: true });
    if (!client || client.isClosed) {
      recorder.complete(id, process, 'info', 0, `no connection to ${server}`);
      failures += 1;
      continue;
    }
    try {
      const decoded = decodeBlock(block, await client.read(block * blockBytes, blockBytes, requestTimeoutMs));
      recorder.complete(id, process, 'ok', decoded.value, decoded.note);
    } catch (error) {
      failures += 1;
      recorder.complete(id, process, error instanceof NbdErrorReply ? 'fail' : 'info', 0, (error as Error).message);
    }
  }
  client?.close();
  return failures;
}
