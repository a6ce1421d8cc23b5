/**
 * The receive queue must hand out messages whole no matter how the socket
 * split them, and skipping must work across chunk boundaries.
 */
import { describe, expect, it } from 'vitest';
import { ReceiveQueue } from './receive-queue.js';

describe('ReceiveQueue', () => {
  it('joins a message split across chunks and leaves the rest queued', () => {
    const queue = new ReceiveQueue();
    queue.push(Buffer.from('ab'));
    queue.push(Buffer.from('cde'));
    queue.push(Buffer.from('fgh'));
    expect(queue.take(9)).toBeNull();
    queue.push(Buffer.from('ij'));
    expect(queue.take(4)?.toString()).toBe('abcd');
    expect(queue.take(4)?.toString()).toBe('efgh');
    expect(queue.lengthBytes).toBe(2);
    expect(queue.peek(2)?.toString()).toBe('ij');
    expect(queue.lengthBytes).toBe(2);
  });

  it('skips across chunks and reports how much it skipped', () => {
    const queue = new ReceiveQueue();
    queue.push(Buffer.from('abc'));
    queue.push(Buffer.from('def'));
    expect(queue.skip(4)).toBe(4);
    expect(queue.take(2)?.toString()).toBe('ef');
    expect(queue.skip(10)).toBe(0);
    expect(queue.take(0)?.length).toBe(0);
  });
});
