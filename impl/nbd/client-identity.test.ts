import { afterEach, describe, expect, it } from 'vitest';
import type { NbdBackend } from './nbd-backend.js';
import { NBD_CMD_READ, NBD_CMD_WRITE, NBD_CMD_WRITE_ZEROES } from './protocol-constants.js';
import { RawClient } from './raw-client.js';
import { startTestServer, type TestServer } from './test-support.js';

/**
 * The front end names the connection each request came on, so a backend can
 * tell clients apart (the load monitor measures per-client load with it).
 */
let server: TestServer | null = null;
const clients: RawClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.sendDisconnect();
  await server?.close();
  server = null;
});

describe('client identity', () => {
  it('every read, write and write-zeroes reaches the backend under its connection\'s own id', async () => {
    server = await startTestServer();
    const seen: Array<{ command: string; clientId: string | undefined }> = [];
    const backend: NbdBackend = server.backend;
    const read = backend.read.bind(backend);
    const write = backend.write.bind(backend);
    const writeZeroes = backend.writeZeroes.bind(backend);
    backend.read = (name, offset, length, clientId) => { seen.push({ command: 'read', clientId }); return read(name, offset, length, clientId); };
    backend.write = (name, offset, data, fua, clientId) => { seen.push({ command: 'write', clientId }); return write(name, offset, data, fua, clientId); };
    backend.writeZeroes = (name, offset, length, fua, clientId) => { seen.push({ command: 'writeZeroes', clientId }); return writeZeroes(name, offset, length, fua, clientId); };

    for (let index = 0; index < 2; index += 1) {
      const client = await RawClient.connect(server.port);
      clients.push(client);
      await client.negotiate('vol-a', false);
      client.sendRequest({ type: NBD_CMD_WRITE, handle: 1n, offset: 0, lengthBytes: 512, payload: Buffer.alloc(512, index) });
      expect(await client.readSimpleReply()).toEqual({ errno: 0, handle: 1n });
      client.sendRequest({ type: NBD_CMD_WRITE_ZEROES, handle: 2n, offset: 512, lengthBytes: 512 });
      expect(await client.readSimpleReply()).toEqual({ errno: 0, handle: 2n });
      client.sendRequest({ type: NBD_CMD_READ, handle: 3n, offset: 0, lengthBytes: 512 });
      expect(await client.readSimpleReply()).toEqual({ errno: 0, handle: 3n });
      await client.read(512);
    }

    expect(seen.map((entry) => entry.command)).toEqual(['write', 'writeZeroes', 'read', 'write', 'writeZeroes', 'read']);
    const ids = seen.map((entry) => entry.clientId);
    for (const id of ids) expect(id).toMatch(/^#\d+ 127\.0\.0\.1:\d+$/);
    expect(new Set(ids.slice(0, 3)).size).toBe(1);
    expect(new Set(ids.slice(3)).size).toBe(1);
    expect(ids[0]).not.toBe(ids[3]);
  });
});
