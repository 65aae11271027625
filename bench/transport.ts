/**
 * Benchmark: tensor transfer throughput between two Node processes, three ways, same bytes:
 *   framed  TensorSender -> TensorReceiver over nats-server (encode with SHA-256, header CRC-32,
 *           credit, reassembly, SHA-256 verification, tensor delivered to the application);
 *   rawNats the same NATS messages (each frame's header in the Tessera-Frame message header, its
 *           body as payload) published with plain NATS publish, flushed with the same cadence (after
 *           each tensor), the subscriber only counts them;
 *   tcp     the same frame bytes (header, then body) written to a plain TCP socket (with
 *           backpressure), the receiver counts bytes;
 *   framedTraced  framed as stage workers send: the tensor's digest (pkg/verify tensorDigest) comes
 *           with it, because the stage already took it for its trace record (computed here outside
 *           the timed loop), so the sender does not hash; the receiver still verifies every tensor
 *           (its digest then serves the receiving stage's trace record);
 *   framedNoResend  framed with resend off (the sender keeps nothing, the receiver sends no acks:
 *           retainBytes 0, maxAttempts 1), to price resend's acks and retention in the same run.
 * The sender runs in this process, the receiver in a forked child (as pipeline stages would be).
 * A round moves TOTAL bytes as tensors of 256 KiB, 1 MiB and 8 MiB (8 MiB = 2 frames, the header
 * counts against max_payload). Time: first send until the child reports the last byte / tensor
 * over IPC. Rounds interleave the modes (order rotated per round); medians; ratios framed/rawNats
 * and framed/tcp from the same run. CPU per MiB of each side (sender process, receiver process,
 * nats-server from /proc) is measured in the same rounds, to show where the time goes.
 *
 * Run: npm run build && node dist/bench/transport.js [rounds=7] [MiB per size per round=64] [window MiB=32] [regrant MiB=window/2]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createConnection, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, headers, type MsgHdrs } from '@nats-io/transport-node';
import { DataType, type Tensor } from '../pkg/onnx/index.js';
import { tensorDigest } from '../pkg/verify/index.js';
import { crc32, encodeTensorFrames, FRAME_HEADER, NatsBus, Reassembler, TensorReceiver, TensorSender, type ChannelAddress, type FrameMeta } from '../pkg/transport/index.js';
import { NatsServer } from '../test/nats/launcher.js';

const MiB = 1024 * 1024;
const MAX_PAYLOAD = 8 * MiB;
const SIZES = [256 * 1024, MiB, 8 * MiB];
const MODES = ['framed', 'framedTraced', 'rawNats', 'tcp', 'framedNoResend'] as const;
type Mode = (typeof MODES)[number];

interface Job { mode: Mode; id: string; count: number; totalBytes: number; url: string; tcpPort: number; window: number; regrantAfter: number }
type ChildMsg = { type: 'ready' } | { type: 'done'; received: number; cpuMs: number } | { type: 'listening'; port: number } | { type: 'fail'; error: string };
const cpuMs = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1000;
/** CPU time (ms) a process has used so far, from /proc (clock ticks of 10 ms). */
function procCpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10; // utime, stime (fields 14, 15)
}

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
        let cpu0 = process.cpuUsage();
        const ready = (): void => { cpu0 = process.cpuUsage(); send({ type: 'ready' }); };
        const done = (received: number): void => send({ type: 'done', received, cpuMs: cpuMs(process.cpuUsage(cpu0)) });
        if (job.mode === 'tcp') {
          let got = 0;
          tcpSink = (n) => { if ((got += n) === job.totalBytes) { tcpSink = undefined; done(got); } };
          ready();
        } else if (job.mode === 'rawNats') {
          let got = 0;
          const sub = nc.subscribe(`bench.raw.${job.id}`, { callback: (_e, m) => {
            if ((got += m.data.length) === job.totalBytes) { sub.unsubscribe(); done(got); }
          } });
          await nc.flush();
          ready();
        } else {
          const rx = new TensorReceiver(bus!, address(job.id), { window: job.window, regrantAfter: job.regrantAfter, maxAttempts: job.mode === 'framedNoResend' ? 1 : undefined });
          await rx.ready();
          ready();
          let n = 0, bytes = 0;
          for await (const e of rx) {
            if (e.type === 'error') throw e.error;
            bytes += e.bytes;
            if (++n === job.count) break;
          }
          await rx.close();
          done(bytes);
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

interface Sample { mibps: number; senderMs: number; receiverMs: number; serverMs: number; mib: number; flushesPerTensor: number }

async function round(mode: Mode, peer: Peer, ctx: { url: string; tcpPort: number; window: number; regrantAfter: number; bus: NatsBus; nc: Awaited<ReturnType<typeof connect>>; sock: Socket; serverPid: number }, size: number, count: number, id: string): Promise<Sample> {
  const tensor = tensorOf(size);
  const meta: FrameMeta = { job: id, step: 0, microBatch: 0, name: 'x', kind: 'activation' };
  // The frames TensorSender sends (same header cost), prepared outside the timed loop for the baselines.
  const frames = encodeTensorFrames(meta, tensor, { maxPayload: MAX_PAYLOAD, headerCost: (h) => ctx.bus.headerCost(h) });
  const frameBytes = frames.reduce((a, f) => a + f.header.length + f.body.length, 0);
  const bodyBytes = frames.reduce((a, f) => a + f.body.length, 0);
  const natsHeaders: MsgHdrs[] = frames.map((f) => { const h = headers(); h.set(FRAME_HEADER, Buffer.from(f.header).toString('base64')); return h; });
  const job: Job = { mode, id, count, totalBytes: (mode === 'rawNats' ? bodyBytes : frameBytes) * count, url: ctx.url, tcpPort: ctx.tcpPort, window: ctx.window, regrantAfter: ctx.regrantAfter };
  const ready = peer.next('ready');
  peer.proc.send(job);
  await ready;
  const done = peer.next('done');
  let sender: TensorSender | undefined;
  if (mode === 'framed' || mode === 'framedTraced' || mode === 'framedNoResend') sender = new TensorSender(ctx.bus, address(id), { maxPayload: MAX_PAYLOAD, retainBytes: mode === 'framedNoResend' ? 0 : undefined });
  const digest = mode === 'framedTraced' ? tensorDigest(tensor) : undefined;
  const srv0 = procCpuMs(ctx.serverPid);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    if (sender) await sender.send({ ...meta, step: i }, tensor, { digest });
    else if (mode === 'rawNats') {
      for (let k = 0; k < frames.length; k++) ctx.nc.publish(`bench.raw.${id}`, frames[k]!.body, { headers: natsHeaders[k]! });
      await ctx.nc.flush(); // TensorSender flushes at the end of every tensor: same cadence
    } else {
      for (const f of frames) {
        ctx.sock.cork();
        ctx.sock.write(f.header);
        const ok = ctx.sock.write(f.body);
        ctx.sock.uncork();
        if (!ok) await new Promise((r) => ctx.sock.once('drain', r));
      }
    }
  }
  const d = (await done) as Extract<ChildMsg, { type: 'done' }>;
  const ms = performance.now() - t0;
  const senderMs = cpuMs(process.cpuUsage(cpu0));
  const serverMs = procCpuMs(ctx.serverPid) - srv0;
  const flushesPerTensor = sender ? sender.stats.flushes / count : 1;
  await sender?.close();
  const mib = (frameBytes * count) / MiB;
  return { mibps: mib / (ms / 1000), senderMs, receiverMs: d.cpuMs, serverMs, mib, flushesPerTensor }; // MiB/s of frame bytes (body + ~100 B header per frame)
}

/**
 * In-process codec rates (MiB/s of CPU time, like the CPU table: wall time on a loaded host would
 * count other processes' turns): encode (SHA-256, headers) and reassemble (header CRC, copy when
 * several chunks, SHA-256), and the two integrity passes alone: SHA-256 (kept, both sides) and
 * CRC-32 (frame version 1 also ran it over every body, both sides).
 */
function codecRates(size: number, bytes: number): { encode: number; reassemble: number; sha: number; crc: number } {
  const tensor = tensorOf(size);
  const n = Math.max(1, Math.round(bytes / size));
  let c0 = process.cpuUsage();
  const all: Array<ReturnType<typeof encodeTensorFrames>> = [];
  for (let i = 0; i < n; i++) all.push(encodeTensorFrames({ job: 'c', step: i, microBatch: 0, name: 'x', kind: 'activation' }, tensor, { maxPayload: MAX_PAYLOAD }));
  const enc = cpuMs(process.cpuUsage(c0));
  let got = 0;
  const r = new Reassembler((e) => { if (e.type === 'tensor') got++; else throw e.error; });
  const owned = all.map((frames) => frames.map((f) => ({ header: f.header, body: f.body.slice() }))); // a bus hands over fresh bodies
  c0 = process.cpuUsage();
  for (const frames of owned) for (const f of frames) r.push(f.header, f.body);
  const dec = cpuMs(process.cpuUsage(c0));
  if (got !== n) throw new Error(`codec check: ${got} of ${n} tensors`);
  const body = new Uint8Array(tensor.data.buffer);
  c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) createHash('sha256').update(body).digest();
  const sha = cpuMs(process.cpuUsage(c0));
  c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) crc32(body);
  const crc = cpuMs(process.cpuUsage(c0));
  const rate = (ms: number): number => (n * size) / MiB / (ms / 1000);
  return { encode: rate(enc), reassemble: rate(dec), sha: rate(sha), crc: rate(crc) };
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
    const ctx = { url: srv.url, tcpPort: port, window, regrantAfter, bus, nc, sock, serverPid: srv.pid };
    const res = new Map<string, Sample[]>();
    let seq = 0;
    for (const size of SIZES) for (const m of MODES) await round(m, peer, ctx, size, Math.max(1, Math.round(16 * MiB / size)), `w${seq++}`); // warm-up
    const codec = new Map<number, Array<ReturnType<typeof codecRates>>>();
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
    const med = (k: string, f: (s: Sample) => number): number => median(res.get(k)!.map(f));
    console.log('size     | framed MiB/s | framed, traced digest MiB/s | raw NATS MiB/s | raw TCP MiB/s | framed/rawNATS | traced/rawNATS | framed/TCP | framed no resend MiB/s | framed/no resend');
    for (const size of SIZES) {
      const [f, g, n, t, x] = MODES.map((m) => med(`${size}:${m}`, (s) => s.mibps));
      const label = size >= MiB ? `${size / MiB} MiB` : `${size / 1024} KiB`;
      console.log(`${label.padEnd(8)} | ${f!.toFixed(0).padStart(12)} | ${g!.toFixed(0).padStart(27)} | ${n!.toFixed(0).padStart(14)} | ${t!.toFixed(0).padStart(13)} | ${(f! / n!).toFixed(3).padStart(14)} | ${(g! / n!).toFixed(3).padStart(14)} | ${(f! / t!).toFixed(3).padStart(10)} | ${x!.toFixed(0).padStart(22)} | ${(f! / x!).toFixed(3).padStart(16)}`);
    }
    // If the run is CPU-bound (three processes on a shared 2-core host), throughput goes as 1 / CPU per MiB:
    // framed/rawNATS cannot exceed rawCPU / (rawCPU + the SHA-256 passes framed must add, one per side).
    console.log('codec in one process, CPU time (same rounds): size | encode MiB/s | reassemble+verify MiB/s | SHA-256 MiB/s | CRC-32 MiB/s | framed - raw NATS CPU ms/MiB (measured below) | 2 x SHA-256 ms/MiB | CPU-bound limit of framed/rawNATS = raw / (raw + 2 x SHA) | of traced/rawNATS = raw / (raw + 1 x SHA)');
    for (const size of SIZES) {
      const e = median(codec.get(size)!.map((c) => c.encode)), d = median(codec.get(size)!.map((c) => c.reassemble));
      const sha = median(codec.get(size)!.map((c) => c.sha)), crc = median(codec.get(size)!.map((c) => c.crc));
      const cpu = (m: Mode): number => med(`${size}:${m}`, (s) => (s.senderMs + s.receiverMs + s.serverMs) / s.mib);
      const twoSha = 2 * 1000 / sha;
      console.log(`  ${size / 1024} KiB | ${e.toFixed(0)} | ${d.toFixed(0)} | ${sha.toFixed(0)} | ${crc.toFixed(0)} | ${(cpu('framed') - cpu('rawNats')).toFixed(2)} | ${twoSha.toFixed(2)} | ${(cpu('rawNats') / (cpu('rawNats') + twoSha)).toFixed(3)} | ${(cpu('rawNats') / (cpu('rawNats') + twoSha / 2)).toFixed(3)}`);
    }
    // CPU ms per MiB moved (medians over rounds); "cores busy" = all three processes' CPU over wall time.
    console.log('CPU ms per MiB (same rounds): size mode | sender | receiver | nats-server | total | cores busy | flushes per tensor');
    for (const size of SIZES) for (const m of MODES) {
      const k = `${size}:${m}`;
      const per = (f: (s: Sample) => number): number => med(k, (s) => f(s) / s.mib);
      const total = per((s) => s.senderMs + s.receiverMs + s.serverMs);
      console.log(`  ${size / 1024} KiB ${m.padEnd(14)} | ${per((s) => s.senderMs).toFixed(2)} | ${per((s) => s.receiverMs).toFixed(2)} | ${m === 'tcp' ? '-' : per((s) => s.serverMs).toFixed(2)} | ${total.toFixed(2)} | ${med(k, (s) => (s.senderMs + s.receiverMs + s.serverMs) / (s.mib / s.mibps * 1000)).toFixed(2)} | ${med(k, (s) => s.flushesPerTensor).toFixed(2)}`);
    }
    for (const size of SIZES) for (const m of MODES) console.log(`  rounds ${size / 1024} KiB ${m}: [${res.get(`${size}:${m}`)!.map((x) => x.mibps.toFixed(0)).join(' ')}]`);
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
