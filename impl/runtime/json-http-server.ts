/**
 * The small loopback HTTP/JSON server behind a server's admin API and its
 * balance endpoint. Every answer, including the ones Node's HTTP parser
 * gives on its own (a malformed request, headers or a body that never
 * finish), is a JSON object `{ok: false, message}` with a 4xx status, so the
 * CLI and the peers read one shape. Everything a caller can hold is bounded:
 * the body's size (checked while it streams in), the time to send the
 * headers and the whole request, and the number of open connections. A
 * long-polling answer (`/moves/wait`) is not limited by these: they bound
 * what the caller sends, not how long the server takes to answer.
 */
import http from 'node:http';
import type net from 'node:net';

export interface JsonAnswer {
  readonly status: number;
  readonly body: unknown;
}

export interface JsonHttpServerOptions {
  readonly host: string;
  readonly port: number;
  readonly handle: (request: http.IncomingMessage) => Promise<JsonAnswer>;
  /** The status of an answer whose handler threw (the admin API says 500, the balance endpoint 400: its throws are bad bodies). */
  readonly thrownStatus: number;
  readonly limits?: Partial<JsonHttpLimits>;
}

export interface JsonHttpLimits {
  /** A caller must have sent the request's headers within this time, */
  readonly headersTimeoutMs: number;
  /** and the whole request (Node checks both every `connectionsCheckingIntervalMs`; its default of 30 s would blur them). */
  readonly requestTimeoutMs: number;
  readonly connectionsCheckingIntervalMs: number;
  /** Connections past this many are closed as they arrive. */
  readonly connectionsMax: number;
}

export const defaultJsonHttpLimits: JsonHttpLimits = { headersTimeoutMs: 5_000, requestTimeoutMs: 10_000, connectionsCheckingIntervalMs: 1_000, connectionsMax: 128 };

export async function startJsonHttpServer(options: JsonHttpServerOptions): Promise<{ port: number; close(): Promise<void> }> {
  const limits = { ...defaultJsonHttpLimits, ...options.limits };
  const server = http.createServer({ connectionsCheckingInterval: limits.connectionsCheckingIntervalMs }, (request, response) => {
    void options.handle(request).then(
      ({ status, body }) => reply(response, status, body),
      (error: unknown) => reply(response, options.thrownStatus, { ok: false, message: (error as Error).message }),
    );
  });
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.maxConnections = limits.connectionsMax;
  server.on('clientError', (error: NodeJS.ErrnoException, socket: net.Socket) => answerClientError(error, socket, limits.requestTimeoutMs));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : options.port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

function reply(response: http.ServerResponse, status: number, body: unknown): void {
  if (response.destroyed || response.headersSent) return;
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

/** Node's parser refused the request or its time ran out: say why in JSON, then close (the stream cannot be trusted after a parse error). */
function answerClientError(error: NodeJS.ErrnoException, socket: net.Socket, requestTimeoutMs: number): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const timedOut = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const status = timedOut ? '408 Request Timeout' : '400 Bad Request';
  const message = timedOut ? `the request did not arrive within ${requestTimeoutMs} ms` : `malformed HTTP request (${error.code ?? error.message})`;
  const body = `${JSON.stringify({ ok: false, message })}\n`;
  socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/** Reads a JSON object body of at most `bodyBytesMax` bytes; anything else is the reason it was refused. */
export async function readJsonObject(request: http.IncomingMessage, bodyBytesMax: number): Promise<Record<string, unknown> | string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of request) {
    bytes += (chunk as Buffer).length;
    if (bytes > bodyBytesMax) return `request body over ${bodyBytesMax} bytes`;
    chunks.push(chunk as Buffer);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : 'expected a JSON object';
  } catch {
    return 'request body is not JSON';
  }
}
