import { describe, expect, it } from 'vitest';
import type { BlockOperation } from '../../machines/node/messages.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';
import type { RuntimeReply, ServerRuntime } from './server-runtime.js';
import { payloadBytesMax, VolumeBackend } from './volume-backend.js';

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
});
