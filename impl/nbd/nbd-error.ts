/**
 * The one error a backend may reject with to choose the NBD error value a
 * client sees.
 *
 * Any other rejection is a backend fault: the connection logs it and answers
 * with EIO, because an arbitrary exception must never leak its text or its
 * shape onto the wire.
 */
import type { NbdErrno } from './protocol-constants.js';

export class NbdError extends Error {
  readonly errno: NbdErrno;

  constructor(errno: NbdErrno, message?: string) {
    super(message ?? `NBD error ${errno}`);
    this.name = 'NbdError';
    this.errno = errno;
  }
}
