/**
 * Benchmark: tensor transfer throughput between two Node processes, three ways, same bytes:
 *   framed  TensorSender -> TensorReceiver over nats-server (encode, CRC-32 per frame, credit,
 *           reassembly, SHA-256 verification, tensor delivered to the application);
 *   rawNats the same frames published with plain NATS publish, flushed with the same cadence (after
 *           each tensor), the subscriber only counts bytes;
 *   tcp     the same frames written to a plain TCP socket (with backpressure), the receiver counts.
 * The sender runs in this process, the receiver in a forked child (as pipeline stages would be).
 * A round moves TOTAL bytes as tensors of 256 KiB, 1 MiB and 8 MiB (8 MiB = 2 frames, the header
 * counts against max_payload). Time: first send until the child reports the last byte / tensor
 * over IPC. Rounds interleave the modes (order rotated per round); medians; ratios framed/rawNats
 * and framed/tcp from the same run.
 *
 * Run: npm run build && node dist/bench/transport.js [rounds=7] [MiB per size per round=64] [window MiB=32] [regrant MiB=window/2]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createConnection, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { DataType, type Tensor } from '../pkg/onnx/index.js';
import { encodeTensorFrames, NatsBus, Reassembler, TensorReceiver, TensorSender, type ChannelAddress, type FrameMeta } from '../pkg/transport/index.js';
import { NatsServer } from '../test/nats/launcher.js';

const MiB = 1024 * 1024;
const MAX_PAYLOAD = 8 * MiB;
const SIZES = [256 * 1024, MiB, 8 * MiB];
const MODES = ['framed', 'rawNats', 'tcp'] as const;
type Mode = (typeof MODES)[number];

interface Job { mode: Mode; id: string; count: number; totalBytes: number; url: string; tcpPort: number; window: number; regrantAfter: number }
type ChildMsg = { type: 'ready' } | { type: 'done'; received: number } | { type: 'listening'; port: number } | { type: 'fail'; error: string };

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };
const address = (id: string): ChannelAddress => ({ ns: 'bench', job: id, stage: 1, direction: 'fwd' });

function tensorOf(bytes: number): Tensor {
  const data = new Float32Array(bytes / 4);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i);
  return { dtype: DataType.FLOAT, dims: [data.length], data };
}

// ------------------------------------------------------------------------------------------------
// Child: the receiving process.

async function child(): Promise<void> {
  const send = (m: ChildMsg): void => { process.send!(m); };
  // One TCP listener for the whole run; each tcp job counts bytes on the next connection's stream.
  let tcpSink: ((n: number) => void) | undefined;
  const server = createServer((sock) => sock.on('data', (d: Buffer) => tcpSink?.(d.length)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  send({ type: 'listening', port });
  let nc: Awaited<ReturnType<typeof connect>> | undefined;
  let bus: NatsBus | undefined;
  process.on('message', (raw) => {
    const job = raw as Job | { mode: 'exit' };
    if (job.mode === 'exit') { void (async () => { await bus?.close(); server.close(); process.exit(0); })(); return; }
    void (async () => {
      try {
        if (!nc) { nc = await connect({ servers: job.url, name: 'bench-recv' }); bus = new NatsBus(nc); }
        if (job.mode === 'tcp') {
          let got = 0;
          tcpSink = (n) => { if ((got += n) === job.totalBytes) { tcpSink = undefined; send({ type: 'done', received: got }); } };
          send({ type: 'ready' });
        } else if (job.mode === 'rawNats') {
          let got = 0;
          const sub = nc.subscribe(`bench.raw.${job.id}`, { callback: (_e, m) => {
            if ((got += m.data.length) === job.totalBytes) { sub.unsubscribe(); send({ type: 'done', received: got }); }
          } });
          await nc.flush();
          send({ type: 'ready' });
        } else {
          const rx = new TensorReceiver(bus!, address(job.id), { window: job.window, regrantAfter: job.regrantAfter });
          await rx.ready();
          send({ type: 'ready' });
          let n = 0, bytes = 0;
          for await (const e of rx) {
            if (e.type === 'error') throw e.error;
            bytes += e.bytes;
            if (++n === job.count) break;
          }
          await rx.close();
          send({ type: 'done', received: bytes });
        }
      } catch (err) {
        send({ type: 'fail', error: String(err) });
      }
    })();
  });
}

// ------------------------------------------------------------------------------------------------
// Parent: the sending process.

class Peer {
  private listeners: Array<(m: ChildMsg) => void> = [];
  constructor(readonly proc: ChildProcess) {
    proc.on('message', (m) => { for (const l of [...this.listeners]) l(m as ChildMsg); });
  }
  next(type: ChildMsg['type']): Promise<ChildMsg> {
    return new Promise((resolve, reject) => {
      const l = (m: ChildMsg): void => {
        if (m.type === 'fail') { this.off(l); reject(new Error(`receiver failed: ${m.error}`)); }
        else if (m.type === type) { this.off(l); resolve(m); }
      };
      this.listeners.push(l);
    });
  }
  private off(l: (m: ChildMsg) => void): void { this.listeners = this.listeners.filter((x) => x !== l); }
}

async function round(mode: Mode, peer: Peer, ctx: { url: string; tcpPort: number; window: number; regrantAfter: number; bus: NatsBus; nc: Awaited<ReturnType<typeof connect>>; sock: Socket }, size: number, count: number, id: string): Promise<number> {
  const tensor = tensorOf(size);
  const meta: FrameMeta = { job: id, step: 0, microBatch: 0, name: 'x', kind: 'activation' };
  const frames = encodeTensorFrames(meta, tensor, { maxPayload: MAX_PAYLOAD });
  const frameBytes = frames.reduce((a, f) => a + f.length, 0);
  const job: Job = { mode, id, count, totalBytes: frameBytes * count, url: ctx.url, tcpPort: ctx.tcpPort, window: ctx.window, regrantAfter: ctx.regrantAfter };
  const ready = peer.next('ready');
  peer.proc.send(job);
  await ready;
  const done = peer.next('done');
  let sender: TensorSender | undefined;
  if (mode === 'framed') sender = new TensorSender(ctx.bus, address(id), { maxPayload: MAX_PAYLOAD });
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    if (mode === 'framed') await sender!.send({ ...meta, step: i }, tensor);
    else if (mode === 'rawNats') {
      for (const f of frames) ctx.nc.publish(`bench.raw.${id}`, f);
      await ctx.nc.flush(); // TensorSender flushes at the end of every tensor: same cadence
    } else {
      for (const f of frames) if (!ctx.sock.write(f)) await new Promise((r) => ctx.sock.once('drain', r));
    }
  }
  await done;
  const ms = performance.now() - t0;
  await sender?.close();
  return (frameBytes * count) / MiB / (ms / 1000); // MiB/s of frame bytes (payload + ~100 B header per frame)
}

/** In-process codec rates (MiB/s): encode (SHA-256, copy, CRC) and reassemble (CRC, copy, SHA-256), to attribute the gap. */
function codecRates(size: number, bytes: number): { encode: number; reassemble: number } {
  const tensor = tensorOf(size);
  const n = Math.max(1, Math.round(bytes / size));
  let t0 = performance.now();
  const all: Uint8Array[][] = [];
  for (let i = 0; i < n; i++) all.push(encodeTensorFrames({ job: 'c', step: i, microBatch: 0, name: 'x', kind: 'activation' }, tensor, { maxPayload: MAX_PAYLOAD }));
  const enc = performance.now() - t0;
  let got = 0;
  const r = new Reassembler((e) => { if (e.type === 'tensor') got++; else throw e.error; });
  t0 = performance.now();
  for (const frames of all) for (const f of frames) r.push(f);
  const dec = performance.now() - t0;
  if (got !== n) throw new Error(`codec check: ${got} of ${n} tensors`);
  return { encode: (n * size) / MiB / (enc / 1000), reassemble: (n * size) / MiB / (dec / 1000) };
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 7);
  const perSize = Number(process.argv[3] ?? 64) * MiB;
  // Receiver credit: the TensorReceiver defaults (32 MiB window, regrant after 16 MiB) allow barely
  // one 8 MiB tensor in flight beyond the one the application holds, so 8 MiB transfers become
  // stop-and-wait; the 4th/5th arguments set them.
  const window = Number(process.argv[4] ?? 32) * MiB;
  const regrantAfter = Number(process.argv[5] ?? window / MiB / 2) * MiB;
  const srv = await NatsServer.start({ maxPayload: MAX_PAYLOAD, maxPending: 128 * MiB });
  const proc = fork(fileURLToPath(import.meta.url), ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const peer = new Peer(proc);
  try {
    const { port } = (await peer.next('listening')) as { port: number };
    const nc = await connect({ servers: srv.url, name: 'bench-send' });
    const bus = new NatsBus(nc);
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.setNoDelay(true);
    await new Promise((r) => sock.once('connect', r));
    const ctx = { url: srv.url, tcpPort: port, window, regrantAfter, bus, nc, sock };
    const res = new Map<string, number[]>();
    let seq = 0;
    for (const size of SIZES) for (const m of MODES) await round(m, peer, ctx, size, Math.max(1, Math.round(16 * MiB / size)), `w${seq++}`); // warm-up
    const codec = new Map<number, Array<{ encode: number; reassemble: number }>>();
    for (let r = 0; r < rounds; r++) {
      for (const size of SIZES) {
        codec.set(size, [...(codec.get(size) ?? []), codecRates(size, 32 * MiB)]);
        const order = MODES.map((_, i) => MODES[(i + r) % MODES.length]!); // rotate who goes first
        for (const m of order) {
          const k = `${size}:${m}`;
          res.set(k, [...(res.get(k) ?? []), await round(m, peer, ctx, size, Math.max(1, Math.round(perSize / size)), `r${seq++}`)]);
        }
      }
    }
    console.log(`transport bench: ${rounds} interleaved rounds, ${perSize / MiB} MiB per size per round, sender and receiver in separate processes, max_payload 8 MiB, credit window ${window / MiB} MiB regrant after ${regrantAfter / MiB} MiB, Node ${process.version}`);
    console.log('size     | framed MiB/s | raw NATS MiB/s | raw TCP MiB/s | framed/rawNATS | framed/TCP');
    for (const size of SIZES) {
      const [f, n, t] = MODES.map((m) => median(res.get(`${size}:${m}`)!));
      const label = size >= MiB ? `${size / MiB} MiB` : `${size / 1024} KiB`;
      console.log(`${label.padEnd(8)} | ${f!.toFixed(0).padStart(12)} | ${n!.toFixed(0).padStart(14)} | ${t!.toFixed(0).padStart(13)} | ${(f! / n!).toFixed(3).padStart(14)} | ${(f! / t!).toFixed(3).padStart(10)}`);
    }
    console.log('codec in one process (same rounds): size | encode MiB/s | reassemble+verify MiB/s | framed if codec and raw NATS costs added serially (MiB/s) | measured framed / that');
    for (const size of SIZES) {
      const e = median(codec.get(size)!.map((c) => c.encode)), d = median(codec.get(size)!.map((c) => c.reassemble));
      const serial = 1 / (1 / median(res.get(`${size}:rawNats`)!) + 1 / e + 1 / d);
      console.log(`  ${size / 1024} KiB | ${e.toFixed(0)} | ${d.toFixed(0)} | ${serial.toFixed(0)} | ${(median(res.get(`${size}:framed`)!) / serial).toFixed(2)}`);
    }
    for (const size of SIZES) for (const m of MODES) console.log(`  rounds ${size / 1024} KiB ${m}: [${res.get(`${size}:${m}`)!.map((x) => x.toFixed(0)).join(' ')}]`);
    sock.destroy();
    await bus.close();
  } finally {
    proc.send({ mode: 'exit' });
    await new Promise((r) => proc.once('exit', r));
    await srv.stop();
  }
}

if (process.argv[2] === '--child') child().catch((e) => { console.error(e); process.exit(1); });
else main().catch((e) => { console.error(e); process.exit(1); });
