import { describe, expect, it } from 'vitest';
import { defaultNodeConfig } from '../../machines/node/node-config.js';
import { emptyNodeState } from '../../machines/node/node-state.js';
import { initialDurableRecords, nodeStep } from '../../machines/node/node.js';
import type { VolumeDefinition } from '../../machines/node/volume.js';

/**
 * An answer to a part of a request that this server no longer has in hand —
 * the part was answered already, or the request was lost with an earlier
 * incarnation of this server while the peer was reading for it — carries
 * bytes nobody will read. The server lets them go at once, as it does for a
 * late forwarded request's answer. (The explorer with --crash-keeps-sent found
 * a restarted source holding the bytes of a block.readDone its previous
 * incarnation had asked for; a TCP runtime held them until its token sweep.)
 */
const alpha: VolumeDefinition = { name: 'alpha', pageCount: 1, pageSizeBlocks: 4, blockSizeBytes: 512, piecesPerPage: 2, servers: ['s1'] };

describe('late answers to served parts', () => {
  it('a block.readDone for a request not in hand lets go of its bytes', () => {
    const [state] = nodeStep(emptyNodeState(defaultNodeConfig('s1', ['s1', 's2']), 2), { type: 'node.start', durable: initialDurableRecords([alpha], 's1') });
    const [, effects] = nodeStep(state, { type: 'peer.message', from: 's2', message: { type: 'block.readDone', requestId: 'c:r1', ok: true, dataToken: 'peer-read:s2.0.2' } });
    expect(effects).toEqual([{ type: 'token.release', token: 's2>peer-read:s2.0.2' }]);
  });
});
