/**
 * The negotiation machine fed bytes directly: each test checks the actions
 * it returns, including how it splits work across partial input.
 */
import { describe, expect, it } from 'vitest';
import { Handshake, encodeGreeting, type HandshakeAction } from './handshake.js';
import { MemoryBackend } from './memory-backend.js';
import { NBD_OPTS_MAGIC, NBD_OPT_ABORT, NBD_OPT_GO, NBD_OPT_SET_META_CONTEXT, NBD_OPT_STRUCTURED_REPLY, NBD_REP_ACK, NBD_REP_ERR_INVALID, NBD_REP_ERR_UNSUP } from './protocol-constants.js';
import { encodeGoData } from './raw-client.js';
import { ReceiveQueue } from './receive-queue.js';

const backend = new MemoryBackend([{ name: 'vol', sizeBytes: 1 << 20 }]);

function option(code: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(16);
  header.writeBigUInt64BE(NBD_OPTS_MAGIC, 0);
  header.writeUInt32BE(code, 8);
  header.writeUInt32BE(data.length, 12);
  return Buffer.concat([header, data]);
}

function replyTypes(actions: HandshakeAction[]): number[] {
  return actions.flatMap((action) => (action.type === 'send' && action.bytes.length >= 20 ? [action.bytes.readUInt32BE(12)] : []));
}

describe('Handshake', () => {
  it('greets with NBDMAGIC, IHAVEOPT and both handshake flags', () => {
    expect(encodeGreeting().toString('hex')).toBe('4e42444d41474943' + '49484156454f5054' + '0003');
  });

  it('waits for whole messages, however the bytes are split', () => {
    const handshake = new Handshake(backend);
    const queue = new ReceiveQueue();
    const stream = Buffer.concat([Buffer.from([0, 0, 0, 3]), option(NBD_OPT_STRUCTURED_REPLY), option(NBD_OPT_GO, encodeGoData('vol', []))]);
    const actions: HandshakeAction[] = [];
    for (const byte of stream) {
      queue.push(Buffer.from([byte]));
      actions.push(...handshake.consume(queue));
    }
    expect(replyTypes(actions)).toEqual([NBD_REP_ACK, 3, 3, NBD_REP_ACK]);
    const start = actions.at(-1);
    expect(start?.type).toBe('transmission.start');
    if (start?.type === 'transmission.start') expect(start.negotiated.structuredReplies).toBe(true);
    expect(handshake.isDone).toBe(true);
  });

  it('refuses structured replies with data, and closes on unknown client flags', () => {
    const handshake = new Handshake(backend);
    const queue = new ReceiveQueue();
    queue.push(Buffer.concat([Buffer.from([0, 0, 0, 1]), option(NBD_OPT_STRUCTURED_REPLY, Buffer.from('x'))]));
    expect(replyTypes(handshake.consume(queue))).toEqual([NBD_REP_ERR_INVALID]);

    const strict = new Handshake(backend);
    const badFlags = new ReceiveQueue();
    badFlags.push(Buffer.from([0, 0, 0, 4]));
    expect(strict.consume(badFlags)).toEqual([{ type: 'close', reason: 'unknown client flags 0x4' }]);
  });

  it('closes when the options exceed the count budget', () => {
    const handshake = new Handshake(backend, { optionDataBytesMax: 64, handshakeBytesMax: 1 << 20, optionCountMax: 2 });
    const queue = new ReceiveQueue();
    queue.push(Buffer.concat([Buffer.from([0, 0, 0, 1]), option(99), option(99), option(99)]));
    const actions = handshake.consume(queue);
    expect(actions.at(-1)).toEqual({ type: 'close', reason: 'more than 2 options' });
  });

  it('answers an option whose data is too long to keep as its kind asks: ERR_INVALID if implemented, ERR_UNSUP if not, and NBD_OPT_ABORT with its ACK', () => {
    const limits = { optionDataBytesMax: 64, handshakeBytesMax: 1 << 20, optionCountMax: 16 };
    const long = Buffer.alloc(65);
    const handshake = new Handshake(backend, limits);
    const queue = new ReceiveQueue();
    queue.push(Buffer.concat([Buffer.from([0, 0, 0, 1]), option(NBD_OPT_GO, long), option(NBD_OPT_SET_META_CONTEXT, long), option(12_345, long)]));
    // A client that read ERR_INVALID would take meta contexts (option 10) for known here (a review found it so).
    expect(replyTypes(handshake.consume(queue))).toEqual([NBD_REP_ERR_INVALID, NBD_REP_ERR_UNSUP, NBD_REP_ERR_UNSUP]);
    const aborting = new Handshake(backend, limits);
    const abortQueue = new ReceiveQueue();
    abortQueue.push(Buffer.concat([Buffer.from([0, 0, 0, 1]), option(NBD_OPT_ABORT, long)]));
    const actions = aborting.consume(abortQueue);
    // "The server MUST reply with NBD_REP_ACK ... a server SHOULD ignore any data sent by the client" (proto.md, NBD_OPT_ABORT).
    expect(replyTypes(actions)).toEqual([NBD_REP_ACK]);
    expect(actions.at(-1)).toEqual({ type: 'close', reason: 'client sent NBD_OPT_ABORT' });
  });
});
