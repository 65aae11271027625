import { jest } from '@jest/globals';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SchedulerClient, SchedulerServer, type JobSpec, type WorkerInfo } from '../scheduler/index.js';
import { eventually, uniformModel } from '../scheduler/testing.js';
import { buildGpt } from '../models/index.js';
import { encodeModel } from '../onnx/index.js';
import { parseOptimizerConfig } from '../optim/index.js';
import { openDataSource } from '../train/index.js';
import { NatsBus } from '../transport/index.js';
import { Driver } from './driver.js';
import { startLocalCluster, type LocalCluster } from './local-cluster.js';
import { backoffDelay } from './scheduler-link.js';

// Integration over real processes: nats-server, a SchedulerServer on a loopback port (gRPC), and
// stage worker processes from dist/ (run `npx tsc -p tsconfig.json` first) started with
// --scheduler. Slow (each worker measures itself at start); generous timeouts for a loaded host.

jest.setTimeout(180_000);

const HEARTBEAT_TIMEOUT_MS = 3000;
const workerMain = resolve('dist/cmd/worker/main.js');

describe('backoffDelay', () => {
  test.each([
    { failures: 0, random: 0, want: 125 },
    { failures: 0, random: 0.999999, want: 250 },
    { failures: 3, random: 0, want: 1000 },
    { failures: 10, random: 0, want: 2500 }, // capped at max 5000, halved by the jitter
    { failures: 1000, random: 0.5, want: 3750 },
  ])('failures $failures, random $random -> $want ms', ({ failures, random, want }) => {
    expect(backoffDelay(failures, 250, 5000, () => random)).toBe(want);
  });
});

describe('stage workers in the scheduler fleet (real processes)', () => {
  let server: SchedulerServer;
  let port: number;
  let client: SchedulerClient;
  let cluster: LocalCluster;
  const schedulerLines: string[] = [];
  const workerLines: string[] = [];

  const fleet = (): Promise<WorkerInfo[]> => client.listFleet();
  const byId = async (id: string): Promise<WorkerInfo | undefined> => (await fleet()).find((w) => w.id === id);
  const startServer = async (p = 0): Promise<void> => {
    server = new SchedulerServer({ host: '127.0.0.1', port: p, heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS, tickIntervalMs: 100, log: (l) => schedulerLines.push(l) });
    port = await server.start();
  };

  beforeAll(async () => {
    await startServer();
    client = new SchedulerClient(`127.0.0.1:${port}`);
    const fleetFile = join(mkdtempSync(join(tmpdir(), 'tessera-fleet-')), 'fleet.yaml');
    writeFileSync(fleetFile, 'devices:\n  - { profile: H100-SXM-80GB, count: 2, id: gpu }\n');
    cluster = await startLocalCluster({
      workers: [{ id: 'fast' }, { id: 'slow', slowdown: 8 }, { id: 'spare' }, { id: 'stopme' }, { id: 'catalog', args: ['--profile', fleetFile, '--device', 'gpu-1'] }],
      args: ['--scheduler', `127.0.0.1:${port}`],
      workerMain,
      onLine: (l) => workerLines.push(l),
    });
    await eventually(async () => (await fleet()).filter((w) => w.status === 'live').length === 5, 60_000, 'five live workers');
  });

  afterAll(async () => {
    await cluster?.stop();
    client?.close();
    await server?.stop();
  });

  test('workers register with their measured profile; the throttled one reports a slower device', async () => {
    const ws = await fleet();
    for (const w of ws) {
      expect(w.profile.measured).toBeDefined();
      const m = w.profile.measured!;
      expect(m.matmulFlops).toBeGreaterThan(0);
      expect(m.busLatency).toBeGreaterThan(0);
      expect(m.busBandwidth).toBeGreaterThan(0);
      expect(m.memoryAvailable).toBeGreaterThan(0);
      // Measured values win over the (here empty) catalog profile.
      expect(w.profile).toMatchObject({ flops: m.matmulFlops, linkLatency: m.busLatency, linkBandwidth: m.busBandwidth, memoryBytes: m.memoryAvailable });
    }
    const fast = ws.find((w) => w.id === 'fast')!;
    const slow = ws.find((w) => w.id === 'slow')!;
    expect(slow.profile.measured!.slowdown).toBe(8);
    expect(fast.profile.measured!.slowdown).toBe(1);
    // 8x throttling; the margin absorbs a loaded host.
    expect(slow.profile.flops).toBeLessThan(fast.profile.flops / 2);
    // A catalog profile from a fleet file keeps its name and device; the measured numbers replace its datasheet ones.
    const catalog = ws.find((w) => w.id === 'catalog')!;
    expect(catalog.profile.name).toBe('H100-SXM-80GB');
    expect(catalog.profile.labels['tessera.dev/device']).toBe('gpu-1');
    expect(catalog.profile.flops).toBe(catalog.profile.measured!.matmulFlops);
    expect(catalog.profile.flops).toBeLessThan(1e13); // a CPU MatMul, not an H100's 1e14+
    // Heartbeats arrive with live stats.
    await eventually(async () => (await byId('fast'))?.stats?.measuredFlops === fast.profile.flops, 10_000, 'heartbeat stats');
  });

  test('SIGKILL of a planned worker: declared lost within the heartbeat timeout, the job is re-planned without it', async () => {
    // Four equal layers of ~1 MB: fits anywhere; two stages over the live fleet.
    const spec: JobSpec = { model: { type: 'chain', chain: uniformModel(4, 0.001, 'tiny') }, stages: 2, microBatches: 2 };
    const job = await client.submitJob('kill-test', spec);
    expect(job.phase).toBe('Planned');
    const planned = job.plan!.stages.map((s) => s.deviceId);
    const victim = planned.find((id) => id !== 'stopme')!;
    const proc = cluster.workers.find((w) => w.id === victim)!;
    const killedAt = Date.now();
    proc.child.kill('SIGKILL');
    await eventually(async () => (await byId(victim))?.status === 'lost', HEARTBEAT_TIMEOUT_MS + 2000, `${victim} declared lost`);
    const noticedMs = Date.now() - killedAt;
    expect(noticedMs).toBeLessThan(HEARTBEAT_TIMEOUT_MS + 2000);
    await eventually(async () => (await client.getJob('kill-test')).attempts >= 2, 10_000, 're-plan');
    const replanned = await client.getJob('kill-test');
    expect(replanned.phase).toBe('Planned');
    expect(replanned.reason).toBe('Replanned');
    const devices = replanned.plan!.stages.map((s) => s.deviceId);
    expect(devices).not.toContain(victim);
    expect(devices).toHaveLength(2);
    expect(schedulerLines.some((l) => l.startsWith(`worker ${victim} lost`) && l.includes('kill-test'))).toBe(true);
    await client.cancelJob('kill-test');
  });

  test('a frozen worker (SIGSTOP) is lost by heartbeat timeout; resumed, it registers again', async () => {
    const proc = cluster.workers.find((w) => w.id === 'stopme')!;
    proc.child.kill('SIGSTOP');
    try {
      await eventually(async () => (await byId('stopme'))?.status === 'lost', HEARTBEAT_TIMEOUT_MS + 5000, 'stopme declared lost');
      expect((await byId('stopme'))!.lostReason).toMatch(/no heartbeat/);
    } finally {
      proc.child.kill('SIGCONT');
    }
    await eventually(async () => (await byId('stopme'))?.status === 'live', 30_000, 'stopme registered again');
    expect(schedulerLines.some((l) => l.startsWith('worker stopme rejoined'))).toBe(true);
  });

  test('the scheduler goes away and comes back: running stages keep serving, workers register again with backoff', async () => {
    const before = workerLines.filter((l) => l.includes('scheduler: registered')).length;
    // A job on two live workers, driven over NATS from here; the scheduler goes away after its first step.
    const dir = mkdtempSync(join(tmpdir(), 'tessera-keep-'));
    const modelPath = join(dir, 'gpt.onnx');
    const model = buildGpt({ vocab: 256, layers: 2, dModel: 16, heads: 2, context: 8, seed: 1 });
    writeFileSync(modelPath, encodeModel(model));
    const pair = cluster.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null && w.id !== 'slow').slice(0, 2).map((w) => w.id);
    const bus = await NatsBus.connect({ servers: cluster.url });
    const data = await openDataSource(resolve('test/fixtures/corpus/kjv-genesis-exodus.txt'), model.graph.inputs.map((v) => ({ name: v.name, type: { dtype: v.type.dtype, shape: [4, 8] } })), { seed: 1 });
    const driver = await Driver.start(bus, {
      ns: 'default', job: 'keep1', stages: 2, microBatches: 2, schedule: '1f1b', model: { path: modelPath }, bindings: { batch: 2 },
      optimizer: parseOptimizerConfig({ kind: 'adamw', lr: 1e-3 }), workers: pair,
    }, model);
    try {
      expect((await driver.trainStep(data.next())).step).toBe(1);
      await server.stop(500);
      for (let s = 2; s <= 3; s++) expect((await driver.trainStep(data.next())).step).toBe(s);
      await driver.stop();
    } finally {
      await driver.close();
      await bus.close();
    }
    expect(workerLines.some((l) => /scheduler: .*registering again in \d+ ms/.test(l))).toBe(true);
    await startServer(port);
    const alive = cluster.workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).map((w) => w.id).sort().join();
    const live = async (): Promise<string> => (await fleet()).filter((w) => w.status === 'live').map((w) => w.id).sort().join();
    await eventually(async () => (await live()) === alive, 30_000, `live workers ${alive} registered with the new scheduler`);
    expect(workerLines.filter((l) => l.includes('scheduler: registered')).length).toBeGreaterThan(before);
  });
});
