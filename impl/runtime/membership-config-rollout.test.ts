import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServerId } from '../../machines/identifiers.js';
import type { Membership } from '../../machines/membership/membership.js';
import { bootstrapMembership } from '../../machines/membership/membership.js';
import type { PeerMessage } from '../../machines/node/messages.js';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import { MetadataStore } from '../storage/metadata-store.js';
import { memoryPages } from './memory-pages.js';
import { ServerRuntime } from './server-runtime.js';

/**
 * The operator moves s2's peer port from 30202 to 30150 in the group config
 * and restarts the servers one by one. Both configs' records are epoch 0;
 * one of them used to win by its text (the old one, "30202" > "30150"), be
 * persisted by the other server, and outlive the rollout: after every server
 * restarted with the new config, s1 still dialled the old port (a review
 * reproduced it). Epoch-0 records no longer travel, and a stored one yields
 * to the configuration at start.
 */
const running: ServerRuntime[] = [];
const stores: MetadataStore[] = [];
const directories: string[] = [];
afterEach(async () => {
  for (const runtime of running.splice(0)) runtime.stop();
  for (const store of stores.splice(0)) await store.close();
  for (const directory of directories.splice(0)) rmSync(directory, { recursive: true, force: true });
});

function configured(s2PeerPort: number): Membership {
  return bootstrapMembership(['s1', 's2'].map((id) => ({ id, peer: { host: '127.0.0.1', port: id === 's1' ? 30201 : s2PeerPort }, admin: null, capacityWeight: 1, draining: false })));
}

async function run(directories: Record<ServerId, string>, s2PortInConfigOf: Record<ServerId, number>): Promise<Map<ServerId, ServerRuntime>> {
  for (const runtime of running.splice(0)) runtime.stop();
  for (const store of stores.splice(0)) await store.close();
  const runtimes = new Map<ServerId, ServerRuntime>();
  for (const id of ['s1', 's2']) {
    const metadata = MetadataStore.open(directories[id]!);
    stores.push(metadata);
    const runtime = new ServerRuntime({
      config: defaultNodeConfig(id, ['s1', 's2']), incarnation: 1, pages: memoryPages(), metadata, log: () => undefined,
      peers: { send: (to: ServerId, message: PeerMessage, data: Buffer | null) => setImmediate(() => runtimes.get(to)?.receive(id, message, data)) },
      bootstrapMembership: configured(s2PortInConfigOf[id]!),
    });
    runtimes.set(id, runtime);
    running.push(runtime);
    runtime.start();
  }
  for (const runtime of runtimes.values()) runtime.announceMembership();
  await new Promise((resolve) => setTimeout(resolve, 100));
  return runtimes;
}

const s2Port = (runtime: ServerRuntime) => runtime.state.membership.members.find((member) => member.id === 's2')?.peer?.port;

describe('a changed peer address rolled out through the group config', () => {
  it('is what every server dials once every server runs the new config', async () => {
    const [one, two] = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'blockshift-rollout-')));
    directories.push(one!, two!);
    const paths = { s1: one!, s2: two! };
    // Half-way: s2 already runs the new config, s1 the old one. Each keeps its own.
    const halfway = await run(paths, { s1: 30202, s2: 30150 });
    expect([s2Port(halfway.get('s1')!), s2Port(halfway.get('s2')!)]).toEqual([30202, 30150]);
    const done = await run(paths, { s1: 30150, s2: 30150 });
    expect([s2Port(done.get('s1')!), s2Port(done.get('s2')!)]).toEqual([30150, 30150]);
  });
});
