import { describe, expect, it } from 'vitest';
import type { ServerStatus } from '../runtime/status-report.js';
import { pageOwnerText } from './blockshift.js';

/**
 * `blockshift status` names each page's owner: the live servers that report
 * a valid copy. With the owner down (a move's source mid-move, say) it
 * printed "owner ?"; it now names the owner the newest routing table among
 * the live servers gives, and says that it is down and who is receiving.
 */
function liveServer(server: string, routes: ServerStatus['routes'], copies: ServerStatus['copies']): ServerStatus {
  return { server, volumes: [], routes, copies, moves: [], requestsInFlight: 0, membership: null, drain: null } as unknown as ServerStatus;
}

describe('the owner status prints for a page', () => {
  it('is the live servers holding a valid copy, with their epochs when there are two', () => {
    const live = [liveServer('s1', { 'v/0': { owner: 's1', epoch: 3 } }, { 'v/0': 'valid (epoch 3)' }), liveServer('s2', { 'v/0': { owner: 's1', epoch: 3 } }, {})];
    expect(pageOwnerText('v/0', live, [])).toBe('s1');
    // Between a destination's commit and its source's flip both report a valid copy, the destination's an epoch above.
    const committing = [liveServer('s1', { 'v/0': { owner: 's1', epoch: 3 } }, { 'v/0': 'valid (epoch 3)' }), liveServer('s2', { 'v/0': { owner: 's1', epoch: 3 } }, { 'v/0': 'valid (epoch 4)' })];
    expect(pageOwnerText('v/0', committing, [])).toBe('s1 (epoch 3), s2 (epoch 4)');
  });

  it('is the newest routing table\'s owner, marked down, with the destination receiving, when the source of a move is down', () => {
    // s2 moves v/0 to s1 and is down; s1 (receiving) and s3 answer, s3 with an older table.
    const live = [
      liveServer('s1', { 'v/0': { owner: 's2', epoch: 4 } }, { 'v/0': 'receiving (epoch 5)' }),
      liveServer('s3', { 'v/0': { owner: 's3', epoch: 2 } }, { 'v/0': 'invalid (epoch 4)' }),
    ];
    expect(pageOwnerText('v/0', live, ['s2'])).toBe('s2 (down; s1 receiving)');
  });

  it('says when the named owner answers but reports no valid copy, and is ? when no table names one', () => {
    const live = [liveServer('s1', { 'v/0': { owner: 's2', epoch: 4 } }, {}), liveServer('s2', { 'v/0': { owner: 's2', epoch: 4 } }, { 'v/0': 'none' })];
    expect(pageOwnerText('v/0', live, [])).toBe('s2 (routing tables; no valid copy reported)');
    expect(pageOwnerText('v/1', live, ['s3'])).toBe('?');
    expect(pageOwnerText('v/1', [liveServer('s1', {}, { 'v/1': 'receiving (epoch 2)' })], ['s2'])).toBe('? (s1 receiving)');
  });
});
