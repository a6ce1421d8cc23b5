import { describe, expect, it } from 'vitest';
import type { RegisterState } from './register-check.js';
import { abandon, complete, fail, initialRegister, initialUnflushedRegister, invoke, powerCut } from './register-check.js';

/**
 * The explorer's per-block register check (register-check.ts) on short
 * histories. A write a completed read has returned has taken effect: it may
 * not take effect again over a later write, even while its acknowledgement
 * is still to come (a review found the check let it, and so missed a part
 * run twice at a move's destination).
 */
function done(result: RegisterState | string): RegisterState {
  if (typeof result === 'string') throw new Error(result);
  return result;
}

/** From `initial`: w1 pending, a read returns it, then w2 is written and acknowledged while w1's answer is still to come. */
function seenThenOverwritten(initial: RegisterState): RegisterState {
  let register = invoke(initial, 'w1', 'write', 1);
  register = invoke(register, 'r1', 'read', -1);
  register = done(complete(register, 'r1', 1, 's1'));
  register = invoke(register, 'w2', 'write', 2);
  return done(complete(register, 'w2', null, 's1'));
}

describe('the register check', () => {
  it('refuses a pending write seen by a read coming back over a later acknowledged write', () => {
    let register = invoke(seenThenOverwritten(initialRegister), 'r2', 'read', -1);
    expect(complete(register, 'r2', 1, 's1')).toMatch(/read returned 1, but only \[2\] were possible/);
    // w1's acknowledgement changes nothing: 2 is what the block holds.
    register = done(complete(register, 'w1', null, 's1'));
    register = invoke(register, 'r3', 'read', -1);
    expect(done(complete(register, 'r3', 2, 's1')).possible).toEqual([2]);
  });

  it('still lets a pending write no read has returned take effect after a later one', () => {
    let register = invoke(initialRegister, 'w1', 'write', 1);
    register = invoke(register, 'w2', 'write', 2);
    register = done(complete(register, 'w2', null, 's1'));
    register = invoke(register, 'r', 'read', -1);
    expect(done(complete(register, 'r', 1, 's1')).possible).toEqual([1]);
  });

  it('lets a power cut roll the block back to a value a read saw before its write was acknowledged', () => {
    const register = invoke(powerCut(seenThenOverwritten(initialUnflushedRegister)), 'r2', 'read', -1);
    expect(done(complete(register, 'r2', 1, 's1')).possible).toEqual([1]);
  });

  it('lets a write answered with an error have taken effect before its answer, never after a write begun since', () => {
    let register = invoke(initialRegister, 'w1', 'write', 1);
    register = fail(register, 'w1');
    // It may have landed: a read now may return it, or what the block held before.
    const read = invoke(register, 'r1', 'read', -1);
    expect(done(complete(read, 'r1', 1, 's1')).possible).toEqual([1]);
    expect(done(complete(read, 'r1', 0, 's1')).possible).toEqual([0]);
    // A write begun after the error, acknowledged: the failed one may not land over it.
    register = invoke(register, 'w2', 'write', 2);
    register = done(complete(register, 'w2', null, 's1'));
    register = invoke(register, 'r2', 'read', -1);
    expect(complete(register, 'r2', 1, 's1')).toMatch(/read returned 1, but only \[2\] were possible/);
    // A write whose server crashed (`abandon`) may still land at any later time.
    let crashed = invoke(initialRegister, 'w1', 'write', 1);
    crashed = abandon(crashed, 'w1');
    crashed = invoke(crashed, 'w2', 'write', 2);
    crashed = done(complete(crashed, 'w2', null, 's1'));
    crashed = invoke(crashed, 'r2', 'read', -1);
    expect(done(complete(crashed, 'r2', 1, 's1')).possible).toEqual([1]);
  });

  it('lets a failed write land after a write it overlapped', () => {
    let register = invoke(initialRegister, 'w1', 'write', 1);
    register = invoke(register, 'w2', 'write', 2);
    register = fail(register, 'w1');
    register = done(complete(register, 'w2', null, 's1'));
    register = invoke(register, 'r', 'read', -1);
    expect(done(complete(register, 'r', 1, 's1')).possible).toEqual([1]);
  });
});
