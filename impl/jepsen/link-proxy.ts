/**
 * Network partitions between servers, made with TCP proxies on loopback.
 *
 * Each server gets one proxy listener standing in for its peer address: the
 * other servers are configured to dial the proxy (see jepsen-group.ts), and
 * the proxy forwards to the server's real peer listener. A peer connection
 * opens with a hello frame naming its sender, so the proxy reads frames only
 * until the hello, learns the link (from → to), and from then on pipes bytes
 * both ways untouched.
 *
 * Cutting a link destroys its open connections and refuses new ones (after
 * the hello, so the dialer sees an ordinary dropped connection and retries
 * with back-off, as it would after a real partition). Links are directed: a
 * server's outbound connection carries only its own messages, so cutting
 * (a → b) silences a to b while b still reaches a. Bytes buffered before the
 * hello are bounded; a connection that exceeds the bound is dropped.
 */
import net from 'node:net';
import type { ServerId } from '../../machines/identifiers.js';
import type { Address } from '../cli/group-config.js';
import { PeerFrameDecoder } from '../peer/peer-frame.js';

const helloBytesMax = 64 * 1024;

export interface ProxyTarget {
  readonly to: ServerId;
  readonly listen: Address;
  readonly upstream: Address;
}

interface ProxiedConnection {
  readonly from: ServerId;
  readonly to: ServerId;
  readonly sockets: net.Socket[];
}

export class LinkProxies {
  readonly #targets: readonly ProxyTarget[];
  readonly #servers: net.Server[] = [];
  readonly #connections = new Set<ProxiedConnection>();
  readonly #pending = new Set<net.Socket>();
  readonly #cut = new Set<string>();

  constructor(targets: readonly ProxyTarget[]) {
    this.#targets = targets;
  }

  async start(): Promise<void> {
    for (const target of this.#targets) {
      const server = net.createServer((socket) => this.#accept(target, socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(target.listen.port, target.listen.host, () => resolve());
      });
      this.#servers.push(server);
    }
  }

  cut(from: ServerId, to: ServerId): void {
    this.#cut.add(linkKey(from, to));
    for (const connection of this.#connections) {
      if (connection.from !== from || connection.to !== to) continue;
      for (const socket of connection.sockets) socket.destroy();
      this.#connections.delete(connection);
    }
  }

  heal(from: ServerId, to: ServerId): void {
    this.#cut.delete(linkKey(from, to));
  }

  healAll(): void {
    this.#cut.clear();
  }

  get cutLinks(): string[] {
    return [...this.#cut];
  }

  async close(): Promise<void> {
    for (const socket of this.#pending) socket.destroy();
    for (const connection of this.#connections) for (const socket of connection.sockets) socket.destroy();
    await Promise.all(this.#servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }

  #accept(target: ProxyTarget, client: net.Socket): void {
    this.#pending.add(client);
    client.setNoDelay(true);
    client.on('error', () => undefined);
    client.on('close', () => this.#pending.delete(client));
    const decoder = new PeerFrameDecoder();
    const buffered: Buffer[] = [];
    let bufferedBytes = 0;
    const onData = (chunk: Buffer) => {
      buffered.push(chunk);
      bufferedBytes += chunk.length;
      let from: ServerId | null = null;
      try {
        for (const frame of decoder.push(chunk)) {
          if (frame.envelope.kind === 'hello') {
            from = frame.envelope.from;
            break;
          }
          throw new Error('first frame is not a hello');
        }
      } catch {
        client.destroy();
        return;
      }
      if (from === null) {
        if (bufferedBytes > helloBytesMax) client.destroy();
        return;
      }
      client.removeListener('data', onData);
      client.pause();
      this.#pending.delete(client);
      if (this.#cut.has(linkKey(from, target.to))) {
        client.destroy();
        return;
      }
      const upstream = net.connect({ host: target.upstream.host, port: target.upstream.port });
      upstream.setNoDelay(true);
      const connection: ProxiedConnection = { from, to: target.to, sockets: [client, upstream] };
      this.#connections.add(connection);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.#connections.delete(connection);
      };
      upstream.on('error', drop);
      upstream.on('close', drop);
      client.on('close', drop);
      upstream.once('connect', () => {
        upstream.write(Buffer.concat(buffered));
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    client.on('data', onData);
  }
}

function linkKey(from: ServerId, to: ServerId): string {
  return `${from}->${to}`;
}
