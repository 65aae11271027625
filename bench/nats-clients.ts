/**
 * Benchmark: the `nats` npm package (v2, maintenance mode) against its successor
 * `@nats-io/transport-node` (v3, on @nats-io/nats-core), both against a local nats-server.
 *
 * (1) Throughput: a 64 MiB float32 tensor split into frames of at most 8 MiB (pkg/transport's
 *     codec), published with a flush after every frame, reassembled and verified by the
 *     subscriber with pkg/transport's Reassembler. Time = first publish to verified tensor.
 * (1b) The same stream with a subscriber that only counts bytes (isolates the client from the codec).
 * (2) Latency: sequential request/reply round trips of a 64-byte message.
 * Rounds alternate v2, v3, v2, v3 ...; each round yields one number; medians are compared as
 * ratios v3/v2 measured in the same run (STYLE: ratios, never absolute claims).
 *
 * Run: node dist/bench/nats-clients.js [rounds]   (needs both clients installed; see bench/README.md)
 */
import { DataType } from '../pkg/onnx/index.js';
import { encodeTensorFrames, Reassembler, splitFrame, type FrameMeta } from '../pkg/transport/index.js';
import { NatsServer } from '../test/nats/launcher.js';

interface MiniConn {
  publish(subject: string, data: Uint8Array): void;
  subscribe(subject: string, cb: (data: Uint8Array, reply: (d: Uint8Array) => void) => void): void;
  request(subject: string, data: Uint8Array): Promise<Uint8Array>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

type Connector = (url: string) => Promise<MiniConn>;

/** The call shapes v2 and v3 connections share (typed here so the bench compiles with either absent). */
interface ClientConn {
  publish(subject: string, data: Uint8Array): void;
  subscribe(subject: string, opts: { callback: (err: unknown, m: { data: Uint8Array; respond(d: Uint8Array): boolean }) => void }): unknown;
  request(subject: string, data: Uint8Array, opts: { timeout: number }): Promise<{ data: Uint8Array }>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

// Both clients share the same call shapes; the modules are loaded dynamically so that the bench
// reports clearly when one was uninstalled.
async function connector(pkg: string): Promise<Connector> {
  const mod = (await import(pkg).catch((err: unknown) => {
    throw new Error(`cannot load "${pkg}": the project keeps only @nats-io/transport-node; rerun with \`npm install --no-save nats\` (${String(err)})`);
  })) as { connect(o: object): Promise<ClientConn> };
  return async (url) => {
    const nc = await mod.connect({ servers: url, maxPingOut: 100 });
    return {
      publish: (s, d) => nc.publish(s, d),
      subscribe: (s, cb) => {
        nc.subscribe(s, { callback: (err, m) => { if (!err) cb(m.data, (d) => m.respond(d)); } });
      },
      request: async (s, d) => (await nc.request(s, d, { timeout: 5000 })).data,
      flush: () => nc.flush(),
      close: () => nc.close(),
    };
  };
}

const MiB = 1024 * 1024;
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2; };

async function throughputRound(connect: Connector, url: string, frames: Uint8Array[], round: number, reassemble = true): Promise<number> {
  const pub = await connect(url);
  const sub = await connect(url);
  const subject = `bench.tput.${round}`;
  let done!: () => void;
  let fail!: (e: Error) => void;
  const finished = new Promise<void>((res, rej) => { done = res; fail = rej; });
  const total = frames.reduce((a, f) => a + f.length, 0);
  let seen = 0;
  const r = new Reassembler((e) => { if (e.type === 'tensor') done(); else fail(e.error); });
  sub.subscribe(subject, (d) => {
    if (reassemble) { const f = splitFrame(d); r.push(f.header, f.body); }
    else if ((seen += d.length) === total) done();
  });
  await sub.flush();
  const t0 = performance.now();
  for (const f of frames) {
    pub.publish(subject, f);
    await pub.flush();
  }
  await finished;
  const ms = performance.now() - t0;
  await pub.close();
  await sub.close();
  return total / MiB / (ms / 1000); // MiB/s
}

async function latencyRound(connect: Connector, url: string, n: number, round: number): Promise<number> {
  const server = await connect(url);
  const client = await connect(url);
  const subject = `bench.rtt.${round}`;
  server.subscribe(subject, (d, reply) => reply(d));
  await server.flush();
  const msg = new Uint8Array(64).fill(7);
  for (let i = 0; i < 50; i++) await client.request(subject, msg); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await client.request(subject, msg);
    samples.push(performance.now() - t0);
  }
  await client.close();
  await server.close();
  return median(samples) * 1000; // µs
}

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 7);
  const v2 = await connector('nats');
  const v3 = await connector('@nats-io/transport-node');
  const srv = await NatsServer.start({ maxPayload: 8 * MiB, maxPending: 128 * MiB });
  try {
    const data = new Float32Array(16 * MiB); // 64 MiB
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i);
    const meta: FrameMeta = { job: 'bench', step: 0, microBatch: 0, name: 'x', kind: 'activation' };
    // Each frame as one byte string (header ‖ body): both clients get the same plain payloads.
    const frames = encodeTensorFrames(meta, { dtype: DataType.FLOAT, dims: [data.length], data }, { maxPayload: 8 * MiB }).map((f) => Buffer.concat([f.header, f.body]));
    const res = { v2: { tput: [] as number[], raw: [] as number[], rtt: [] as number[] }, v3: { tput: [] as number[], raw: [] as number[], rtt: [] as number[] } };
    await throughputRound(v2, srv.url, frames, -1); // warm-up both
    await throughputRound(v3, srv.url, frames, -2);
    for (let i = 0; i < rounds; i++) {
      const order: Array<['v2' | 'v3', Connector]> = i % 2 ? [['v3', v3], ['v2', v2]] : [['v2', v2], ['v3', v3]];
      for (const [name, c] of order) {
        res[name].tput.push(await throughputRound(c, srv.url, frames, i));
        res[name].raw.push(await throughputRound(c, srv.url, frames, i, false));
        res[name].rtt.push(await latencyRound(c, srv.url, 1000, i));
      }
    }
    const t2 = median(res.v2.tput), t3 = median(res.v3.tput), r2 = median(res.v2.raw), r3 = median(res.v3.raw), l2 = median(res.v2.rtt), l3 = median(res.v3.rtt);
    console.log(`frames per tensor: ${frames.length} (max 8 MiB each), rounds: ${rounds} interleaved`);
    console.log(`throughput MiB/s  v2 median ${t2.toFixed(0)} [${res.v2.tput.map((x) => x.toFixed(0)).join(' ')}]`);
    console.log(`throughput MiB/s  v3 median ${t3.toFixed(0)} [${res.v3.tput.map((x) => x.toFixed(0)).join(' ')}]`);
    console.log(`raw bytes  MiB/s  v2 median ${r2.toFixed(0)} [${res.v2.raw.map((x) => x.toFixed(0)).join(' ')}]`);
    console.log(`raw bytes  MiB/s  v3 median ${r3.toFixed(0)} [${res.v3.raw.map((x) => x.toFixed(0)).join(' ')}]`);
    console.log(`request/reply µs  v2 median ${l2.toFixed(0)} [${res.v2.rtt.map((x) => x.toFixed(0)).join(' ')}]`);
    console.log(`request/reply µs  v3 median ${l3.toFixed(0)} [${res.v3.rtt.map((x) => x.toFixed(0)).join(' ')}]`);
    console.log(`RATIO throughput v3/v2 = ${(t3 / t2).toFixed(3)} (higher is better for v3)`);
    console.log(`RATIO raw bytes  v3/v2 = ${(r3 / r2).toFixed(3)} (no reassembly: isolates the client)`);
    console.log(`RATIO latency    v3/v2 = ${(l3 / l2).toFixed(3)} (lower is better for v3)`);
  } finally {
    await srv.stop();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
