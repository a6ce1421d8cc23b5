import { describe, expect, it } from 'vitest';
import { fingerprint } from './fingerprint.js';
import { referenceBound } from './world-config.js';
import type { WorldConfig } from './world-config.js';
import type { Action, World } from './world.js';
import { applyAction, describeAction, enabledActions, initialWorld } from './world.js';

/**
 * Page-data writes that fail (WorldConfig.dataWriteFailures): `disk.fail`
 * arms a server, spending one unit of the budget, and the next `data.write`
 * there completes `ok: false` with the page left as it was. A crash disarms.
 */
const config: WorldConfig = { ...referenceBound, servers: 2, pieces: 1, writes: 2, reads: 0, moves: 0, crashes: 1, dataWriteFailures: 1 };
const arm = (server: number): Action => ({ type: 'disk.fail', server });
const enabled = (world: World, action: Action) => enabledActions(world).some((candidate) => JSON.stringify(candidate) === JSON.stringify(action));
const act = (world: World, action: Action): World => {
  expect(enabled(world, action), JSON.stringify(action)).toBe(true);
  return applyAction(world, action);
};

describe('a page-data write that fails at its disk', () => {
  const start = initialWorld(config);

  it('is armed only within the budget, on a server that is up and not armed yet', () => {
    expect(enabled(initialWorld({ ...config, dataWriteFailures: 0 }), arm(0))).toBe(false);
    const armed = act(start, arm(0));
    expect(armed.servers[0]!.diskFailsNext).toBe(true);
    expect(armed.budgets.dataWriteFailures).toBe(0);
    expect(enabled(armed, arm(1))).toBe(false);
    expect(enabled(act(initialWorld({ ...config, dataWriteFailures: 2 }), arm(0)), arm(0))).toBe(false);
    expect(enabled(act(start, { type: 'crash', server: 0 }), arm(0))).toBe(false);
    expect(describeAction(start, arm(0))).toBe("s1's next page write fails");
  });

  it('is in the fingerprint: the armed server and the budget spent', () => {
    const armed = act(start, arm(0));
    expect(fingerprint(armed)).not.toBe(fingerprint(start));
    // The flag alone (the budget as it was) and the budget alone (the flag as it was) each tell the worlds apart.
    expect(fingerprint({ ...armed, budgets: start.budgets })).not.toBe(fingerprint(start));
    expect(fingerprint({ ...armed, servers: start.servers })).not.toBe(fingerprint(start));
  });

  it('fails the next write at the armed server: the page is unchanged, the client told, the flag cleared', () => {
    const written = act(act(start, arm(0)), { type: 'client.write', server: 0, block: 0 });
    expect(written.servers[0]!.data['vol/0']?.[0] ?? 0).toBe(0);
    expect(written.servers[0]!.diskFailsNext).toBe(false);
    expect(written.sightings.dataWriteFailed).toBe(true);
    expect(written.clients.find((client) => client.id === 'w1')?.status).toBe('error');
    // An error reply leaves the write's outcome unknown: the block may hold it or not (register-check.ts, `fail`).
    expect(written.registers[0]!.possible).toEqual([0, 1]);
    expect(written.violation).toBeNull();
    // The next write lands.
    const again = act(written, { type: 'client.write', server: 0, block: 0 });
    expect(again.servers[0]!.data['vol/0']?.[0]).toBe(2);
    expect(again.clients.find((client) => client.id === 'w2')?.status).toBe('ok');
  });

  it('is disarmed by a crash, whose budget unit stays spent', () => {
    const crashed = act(act(start, arm(0)), { type: 'crash', server: 0 });
    expect(crashed.servers[0]!.diskFailsNext).toBe(false);
    const restarted = act(crashed, { type: 'restart', server: 0 });
    expect(restarted.budgets.dataWriteFailures).toBe(0);
    const written = act(restarted, { type: 'client.write', server: 0, block: 0 });
    expect(written.servers[0]!.data['vol/0']?.[0]).toBe(1);
    expect(written.clients.find((client) => client.id === 'w1')?.status).toBe('ok');
  });
});
