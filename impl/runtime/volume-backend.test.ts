import { describe, expect, it } from 'vitest';
import type { BlockOperation } from '../../machines/node/messages.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import type { RuntimeReply, ServerRuntime } from './server-runtime.js';
import { partsInFlightPerRequestMax, payloadBytesMax, VolumeBackend } from './volume-backend.js';

/**
 * The NBD backend over a stand-in runtime that records what it is asked. A
 * WRITE_ZEROES larger than one payload is written in chunks one after
 * another; once its connection closes, the rest are not issued, so a closed
 * connection never becomes known to the node again (it would stay known for
 * good, one of a bounded number).
 */
describe('volume backend', () => {
  const volume: VolumeDefinition = { name: 'v', pageCount: 64, pageSizeBlocks: 2 * 1024 * 1024, blockSizeBytes: 512, piecesPerPage: 1, servers: ['s1'] };

  function standIn() {
    const requests: Array<{ operation: BlockOperation; connectionId: string }> = [];
    const closed: string[] = [];
    let release: (() => void) | null = null;
    const runtime = {
      state: { volumes: { v: volume } },
      request(operation: BlockOperation, _data: Buffer | null, connectionId: string): Promise<RuntimeReply> {
        requests.push({ operation, connectionId });
        return new Promise((resolve) => { release = () => resolve({ outcome: { status: 'ok' }, data: null }); });
      },
      connectionClosed(connectionId: string) { closed.push(connectionId); },
    } as unknown as ServerRuntime;
    return { backend: new VolumeBackend(runtime), requests, closed, answer: () => release?.() };
  }

  it('stops a WRITE_ZEROES between chunks once its connection closes, and tells the runtime of the close', async () => {
    const { backend, requests, closed, answer } = standIn();
    const zeroed = backend.writeZeroes('v', 0, 3 * payloadBytesMax, false, '#7 client');
    await new Promise((resolve) => setImmediate(resolve));
    expect(requests.map((request) => request.connectionId)).toEqual(['#7 client']);
    backend.connectionClosed('#7 client');
    answer();
    await expect(zeroed).rejects.toThrow(/connection closed/);
    expect(requests).toHaveLength(1);
    expect(closed).toEqual(['#7 client']);
  });

  it('answers a TRIM with FUA without a FLUSH, which would use up the connection\'s loss report', async () => {
    const { backend, requests } = standIn();
    // The stand-in runtime has no flush: a TRIM that issued one would reject.
    await backend.trim('v', 0, 4096, true);
    expect(requests).toHaveLength(0);
  });

  it('writes every chunk of a WRITE_ZEROES on an open connection', async () => {
    const { backend, requests, answer } = standIn();
    const zeroed = backend.writeZeroes('v', 0, 3 * payloadBytesMax, false, '#8 client');
    for (let chunk = 0; chunk < 3; chunk += 1) {
      await new Promise((resolve) => setImmediate(resolve));
      answer();
    }
    await zeroed;
    expect(requests).toHaveLength(3);
  });
  /** A stand-in runtime whose requests are answered by the test, one by one, each with an outcome of its choice. */
  function controlled(pieceBlocks: number) {
    const fine: VolumeDefinition = { name: 'fine', pageCount: 4, pageSizeBlocks: 8192, blockSizeBytes: 512, piecesPerPage: 8192 / pieceBlocks, servers: ['s1'] };
    const pending: Array<{ operation: BlockOperation; data: Buffer | null; settle: (ok: boolean) => void }> = [];
    let inFlightMax = 0;
    const runtime = {
      state: { volumes: { fine } },
      request(operation: BlockOperation, data: Buffer | null): Promise<RuntimeReply> {
        return new Promise((resolve) => {
          const entry = { operation, data, settle: (ok: boolean) => { pending.splice(pending.indexOf(entry), 1); resolve({ outcome: ok ? { status: 'ok' } : { status: 'error', errno: 5, reason: 'injected' }, data: null } as RuntimeReply); } };
          pending.push(entry);
          inFlightMax = Math.max(inFlightMax, pending.length);
        });
      },
      connectionClosed() {},
    } as unknown as ServerRuntime;
    return { backend: new VolumeBackend(runtime), pending, inFlightMax: () => inFlightMax };
  }

  it('answers a request with a failed part only once every part has settled', async () => {
    const { backend, pending } = controlled(8192);
    // Two pages: two parts.
    let answered = false;
    const written = backend.write('fine', 0, Buffer.alloc(2 * 8192 * 512, 1), false, '#9 client').then(() => 'ok', (error: Error) => error.message);
    void written.then(() => { answered = true; });
    await new Promise((resolve) => setImmediate(resolve));
    expect(pending).toHaveLength(2);
    pending[0]!.settle(false);
    await new Promise((resolve) => setTimeout(resolve, 20));
    // With Promise.all the error was answered here, while the other part still ran.
    expect(answered).toBe(false);
    pending[0]!.settle(true);
    expect(await written).toMatch(/injected|I\/O|error/i);
  });

  it('hands the node at most partsInFlightPerRequestMax parts of one request at once, and writes them all', async () => {
    // Pieces of one block: a 1 MiB write is 2048 parts, which all at once could meet the node's bound on requests in flight.
    const { backend, pending, inFlightMax } = controlled(1);
    const written = backend.write('fine', 0, Buffer.alloc(2048 * 512, 1), false, '#10 client');
    let settled = 0;
    while (settled < 2048) {
      await new Promise((resolve) => setImmediate(resolve));
      expect(pending.length).toBeLessThanOrEqual(partsInFlightPerRequestMax);
      for (const entry of [...pending]) { entry.settle(true); settled += 1; }
    }
    await written;
    expect(inFlightMax()).toBe(partsInFlightPerRequestMax);
  });

  it('writes every WRITE_ZEROES from one shared buffer of zeros, not a fresh one per request', async () => {
    const { backend, pending } = controlled(8192);
    const zeroed = [backend.writeZeroes('fine', 0, 4096, false, '#11 client'), backend.writeZeroes('fine', 8192 * 512, 4096, false, '#12 client')];
    await new Promise((resolve) => setImmediate(resolve));
    expect(pending).toHaveLength(2);
    expect(pending[0]!.data!.buffer).toBe(pending[1]!.data!.buffer);
    expect(pending.every((entry) => entry.data!.every((byte) => byte === 0))).toBe(true);
    for (const entry of [...pending]) entry.settle(true);
    await Promise.all(zeroed);
  });
});
