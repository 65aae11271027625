import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { registerBus, type BusSubscription, type MessageBus } from './tensor-channel.js';

/**
 * MessageBus over core NATS with the nats.js v3 client (@nats-io/transport-node). Kept over the
 * `nats` v2 package after bench/nats-clients.ts measured them equal within noise (v2 is in
 * maintenance). Core NATS only: no JetStream, so flow control is the channel's credit protocol.
 */

export interface NatsBusOptions {
  /** Server URL(s). @default "nats://127.0.0.1:4222" */
  servers?: string | string[];
  /** Connection name shown by the server's /connz. @default "tessera" */
  name?: string;
  /** Called with errors the client reports for a subscription (e.g. client-side slow consumer). @default ignore */
  onError?: (err: Error, subject: string) => void;
}

export class NatsBus implements MessageBus {
  private readonly subs = new Set<Subscription>();

  /** Wraps an existing connection; close() closes it. */
  constructor(readonly connection: NatsConnection, private readonly onError?: (err: Error, subject: string) => void) {}

  static async connect(opts: NatsBusOptions = {}): Promise<NatsBus> {
    const nc = await connect({ servers: opts.servers ?? 'nats://127.0.0.1:4222', name: opts.name ?? 'tessera' });
    return new NatsBus(nc, opts.onError);
  }

  publish(subject: string, data: Uint8Array): void {
    this.connection.publish(subject, data);
  }

  subscribe(subject: string, onMessage: (data: Uint8Array) => void): BusSubscription {
    const sub = this.connection.subscribe(subject, {
      callback: (err, msg) => {
        if (err) this.onError?.(err, subject);
        else onMessage(msg.data);
      },
    });
    this.subs.add(sub);
    return { unsubscribe: () => { this.subs.delete(sub); sub.unsubscribe(); } };
  }

  flush(): Promise<void> {
    return this.connection.flush();
  }

  async close(): Promise<void> {
    if (this.connection.isClosed()) return;
    await this.connection.drain().catch(() => this.connection.close());
  }
}

registerBus('nats', async (o) => NatsBus.connect(o as NatsBusOptions));
