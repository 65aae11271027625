import { connect, headers, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { registerBus, type BusSubscription, type MessageBus } from './tensor-channel.js';

/**
 * MessageBus over core NATS with the nats.js v3 client (@nats-io/transport-node). Kept over the
 * `nats` v2 package after bench/nats-clients.ts measured them equal within noise (v2 is in
 * maintenance). Core NATS only: no JetStream, so flow control is the channel's credit protocol.
 * A message's binary header (a tensor frame's header) travels base64-encoded in the NATS message
 * header `Tessera-Frame`, so the payload is the caller's bytes as they are: nothing is copied to
 * put header and body together (the client copies once into its socket buffer, as for any publish).
 */

/** NATS message header that carries a binary message header. */
export const FRAME_HEADER = 'Tessera-Frame';
// "NATS/1.0\r\n" + "Tessera-Frame: " + value + "\r\n" + "\r\n"
const HEADER_FIXED = 10 + FRAME_HEADER.length + 2 + 2 + 2;

/**
 * The header's base64, padded with spaces (which Node's base64 decoder skips; they sit inside the
 * value because header values are trimmed) so that the NATS header block is a multiple of 8 bytes.
 * The client receives a message larger than one socket read into a buffer of its own at offset 0,
 * header block first: the body then starts 8-byte aligned, and the receiver can view the tensor
 * in place instead of copying it to align it.
 */
function alignedBase64(header: Uint8Array): string {
  const b64 = Buffer.from(header.buffer, header.byteOffset, header.byteLength).toString('base64');
  const pad = (8 - ((HEADER_FIXED + b64.length) % 8)) % 8;
  return pad === 0 ? b64 : `${b64.slice(0, 4)}${' '.repeat(pad)}${b64.slice(4)}`;
}

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

  publish(subject: string, data: Uint8Array, header?: Uint8Array): void {
    if (!header) {
      this.connection.publish(subject, data);
      return;
    }
    const h = headers();
    h.set(FRAME_HEADER, alignedBase64(header));
    this.connection.publish(subject, data, { headers: h });
  }

  subscribe(subject: string, onMessage: (data: Uint8Array, header?: Uint8Array) => void): BusSubscription {
    const sub = this.connection.subscribe(subject, {
      callback: (err, msg) => {
        if (err) { this.onError?.(err, subject); return; }
        const h = msg.headers?.get(FRAME_HEADER);
        onMessage(msg.data, h ? new Uint8Array(Buffer.from(h, 'base64')) : undefined);
      },
    });
    this.subs.add(sub);
    return { unsubscribe: () => { this.subs.delete(sub); sub.unsubscribe(); } };
  }

  /** Base64 plus the NATS header framing and up to 7 bytes of alignment padding. */
  headerCost(length: number): number {
    return HEADER_FIXED + 4 * Math.ceil(length / 3) + 7;
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
