import type { ServerId } from '../identifiers.js';
import type { PeerMessage } from './messages.js';

/**
 * The name under which a server keeps the bytes a peer message brought.
 *
 * A data token is named by the server that made it (`client:<request>` for a
 * client's write, `peer-read:<n>` for bytes read for a peer), and a message
 * carries its sender's name for the bytes it brings. Kept under that name at
 * the receiver, two tokens could share one: a client's write forwarded to the
 * owner, forwarded back by a forwarding pointer to the server it came from,
 * arrives there named as that server's own token for the same client request.
 * The first of the two requests to finish then let go of the bytes the other
 * still had to write (the explorer found it: 3 servers, two unit moves,
 * forwarding pointers, 21 steps; the simulator's assertion failed, the TCP
 * runtime would fail the write). So a receiver keeps them under the sender's
 * name prefixed by the sender. Names a server makes never contain `>` (server
 * ids are letters, digits, `_` and `-`: membership.ts), so they never meet a
 * received name, and received names from different senders differ in their
 * first part.
 *
 * The node, the TCP runtime and the simulator all use this one function, so
 * the bytes are found under the name the node's effects use.
 */
export function receivedDataToken(from: ServerId, token: string): string {
  return `${from}>${token}`;
}

/** The message as the receiver's node sees it: its data token, if any, renamed to the receiver's name for those bytes. */
export function withReceivedDataToken(from: ServerId, message: PeerMessage): PeerMessage {
  if (!('dataToken' in message) || message.dataToken === null) return message;
  return { ...message, dataToken: receivedDataToken(from, message.dataToken) };
}
