import { describe, expect, it } from 'vitest';
import { explore } from '../explorer/explore.js';
import { FingerprintAudit } from './fingerprint-audit.js';
import { referenceBound } from './world-config.js';
import type { WorldConfig } from './world-config.js';
import { applyAction, enabledActions, initialWorld } from './world.js';
import type { World } from './world.js';

/**
 * The explorer merges worlds by fingerprint; the audit (fingerprint-audit.ts)
 * checks, on every revisit, that the merged worlds agree in every field but
 * the documented abstractions. Small searches that between them reach moves
 * of both kinds, crashes, power cuts, reads forwarded across a crash, three
 * servers merged by symmetry and a duplicating network must show no merge
 * the abstractions do not explain.
 */
const small = (changes: Partial<WorldConfig>): WorldConfig => ({ ...referenceBound, servers: 2, writes: 1, reads: 0, crashes: 0, ...changes });
const searchOptions = { statesMax: 100_000, depthMax: 500, livenessSamples: 0, livenessEvery: 1, livenessStepsMax: 0 };

describe('states merged by fingerprint differ only where the fingerprint says it may abstract', () => {
  const configurations: Array<[string, WorldConfig]> = [
    ['a read through the non-owner of a 2-piece page, a crash', small({ writes: 0, reads: 1, crashes: 1 })],
    ['three servers, a read and a crash (symmetry)', small({ servers: 3, writes: 0, reads: 1, crashes: 1 })],
    ['unit move, a write, a crash, power loss', small({ crashes: 1, moveKinds: ['unit'], powerLoss: true })],
    ['duplicating network', small({ network: 'duplicating', networkFaults: 1 })],
    // A disk armed to fail its next page write is in the server's text, and the budget with the rest.
    ['a page-data write fails: piecewise move of one piece, two writes', small({ pieces: 1, writes: 2, dataWriteFailures: 1 })],
  ];
  it.each(configurations)('%s', (_name, config) => {
    const audit = new FingerprintAudit(true, false);
    const result = explore(config, { ...searchOptions, fingerprintAudit: audit });
    console.log(`${_name}: ${result.states} states\n${audit.report(4)}`);
    expect(result.complete).toBe(true);
    // The audit saw revisits, and some differed in abstracted fields: it compares what it claims to.
    expect(audit.compared).toBeGreaterThan(500);
    expect(audit.differing).toBeGreaterThan(0);
    expect(audit.unexplained, audit.unexplainedPairs.map((pair) => pair.paths.join(' + ')).join('\n')).toBe(0);
  });
});

describe('the audit tells an unexplained difference from an abstracted one', () => {
  // A world where the owner serves a forwarded write: a request, a pending metadata commit and ids in hand.
  let world = initialWorld(small({ crashes: 1 }));
  for (let step = 0; step < 3; step += 1) world = applyAction(world, enabledActions(world)[0]!);
  const withServer = (index: number, change: (server: World['servers'][number]) => World['servers'][number]): World =>
    ({ ...world, servers: world.servers.map((server, at) => (at === index ? change(server) : server)) });

  it('a different id counter is abstracted', () => {
    const audit = new FingerprintAudit(true, false);
    audit.noteNew(0, world);
    audit.noteRevisit(0, withServer(0, (server) => ({ ...server, node: { ...server.node, nextId: server.node.nextId + 5 } })));
    expect(audit.differing).toBe(1);
    expect(audit.unexplained).toBe(0);
    expect([...audit.byPaths.keys()]).toEqual(['.servers[*].node.nextId']);
  });

  it('a different incarnation of the simulated server is not', () => {
    const audit = new FingerprintAudit(true, false);
    audit.noteNew(0, world);
    audit.noteRevisit(0, withServer(1, (server) => ({ ...server, incarnation: server.incarnation + 1 })));
    expect(audit.unexplained).toBe(1);
    expect([...audit.byPaths.keys()]).toEqual(['.servers[*].incarnation']);
  });

  it('a different route, inside a per-page map, is not', () => {
    const audit = new FingerprintAudit(true, false);
    audit.noteNew(0, world);
    const [key, route] = [...world.servers[0]!.node.routes][0]!;
    audit.noteRevisit(0, withServer(0, (server) => ({ ...server, node: { ...server.node, routes: server.node.routes.with(key, { ...route, epoch: route.epoch + 1 }) } })));
    expect(audit.unexplained).toBe(1);
    expect([...audit.byPaths.keys()]).toEqual(['.servers[*].node.routes.<PageMap>[*][*].epoch']);
  });

  it('equal worlds are not reported', () => {
    const audit = new FingerprintAudit(true, false);
    audit.noteNew(0, world);
    audit.noteRevisit(0, { ...world });
    expect(audit.compared).toBe(1);
    expect(audit.differing).toBe(0);
  });
});
