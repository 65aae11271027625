import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { clientConstructor } from './proto.js';
import { SchedulerClient, SchedulerServer, type JobSpec, type WorkerInbound, type WorkerSession } from './index.js';
import { GB, eventually, profile, uniformModel } from './testing.js';

// Integration: a real SchedulerServer on a free loopback port, driven through SchedulerClient.
// Time is real: heartbeats every 50 ms, a worker is lost after 400 ms of silence.

const TIMEOUT_MS = 400;
const spec24: JobSpec = { model: { type: 'chain', chain: uniformModel(6, 4, 'm24') }, stages: 3 }; // 24 GB: needs 3 of the 10 GB devices

async function expectStatus(p: Promise<unknown>, code: grpc.status, details: RegExp): Promise<void> {
  const err = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as grpc.ServiceError | undefined;
  expect(err).toBeDefined();
  expect({ code: err!.code, details: err!.details }).toEqual({ code, details: expect.stringMatching(details) });
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

describe('scheduler gRPC server (loopback)', () => {
  let server: SchedulerServer;
  let client: SchedulerClient;
  const lines: string[] = [];
  const sessions = new Map<string, { session: WorkerSession; beat: NodeJS.Timeout }>();

  const connect = async (id: string, memGb: number, tflops: number): Promise<WorkerSession> => {
    const session = client.connectWorker(id, profile(memGb, tflops, `gpu-${tflops}`));
    const ack = await session.next((m) => m.type === 'ack');
    expect(ack).toMatchObject({ type: 'ack', workerId: id, heartbeatTimeoutMs: TIMEOUT_MS });
    const beat = setInterval(() => session.heartbeat({ utilization: 0.5, memoryUsedBytes: 1, measuredFlops: 0 }), 50);
    sessions.set(id, { session, beat });
    return session;
  };
  const silence = (id: string): void => clearInterval(sessions.get(id)!.beat);
  const assignmentFor = (jobId: string, attempt: number) => (m: WorkerInbound) => m.type === 'assignment' && m.jobId === jobId && m.attempt === attempt;

  beforeAll(async () => {
    server = new SchedulerServer({ host: '127.0.0.1', port: 0, heartbeatTimeoutMs: TIMEOUT_MS, tickIntervalMs: 50, log: (l) => lines.push(l) });
    const port = await server.start();
    client = new SchedulerClient(`127.0.0.1:${port}`);
  });

  afterAll(async () => {
    for (const { session, beat } of sessions.values()) {
      clearInterval(beat);
      session.cancel();
    }
    client.close();
    await server.stop(500);
  });

  test('health reports SERVING for the server and the Scheduler service', async () => {
    expect(await client.checkHealth('')).toBe('SERVING');
    expect(await client.checkHealth('tessera.v1.Scheduler')).toBe('SERVING');
    await expectStatus(client.checkHealth('no.such.Service'), grpc.status.NOT_FOUND, /unknown service "no.such.Service"/);
  });

  test.each(['v1', 'v1alpha'])('server reflection (%s) lists services and serves descriptors a client can call through', async (version) => {
    const Reflection = clientConstructor(`grpc.reflection.${version}.ServerReflection`);
    const rc = new Reflection(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    const stream = (rc as unknown as Record<string, () => grpc.ClientDuplexStream<object, Record<string, unknown>>>)['ServerReflectionInfo']!.call(rc);
    const ask = (req: object): Promise<Record<string, unknown>> => new Promise((resolve) => { stream.once('data', resolve); stream.write(req); });
    const list = (await ask({ listServices: '*' })) as { listServicesResponse: { service: { name: string }[] } };
    expect(list.listServicesResponse.service.map((x) => x.name)).toEqual(expect.arrayContaining(['tessera.v1.Scheduler', 'grpc.health.v1.Health', `grpc.reflection.${version}.ServerReflection`]));
    const missing = (await ask({ fileContainingSymbol: 'no.Such' })) as { errorResponse: { errorCode: number; errorMessage: string } };
    expect(missing.errorResponse).toEqual({ errorCode: grpc.status.NOT_FOUND, errorMessage: 'symbol "no.Such" not found' });
    const byName = (await ask({ fileByFilename: 'tessera/v1/scheduler.proto' })) as { fileDescriptorResponse: { fileDescriptorProto: Buffer[] } };
    const found = (await ask({ fileContainingSymbol: 'tessera.v1.Scheduler.SubmitJob' })) as { fileDescriptorResponse: { fileDescriptorProto: Buffer[] } };
    expect(found.fileDescriptorResponse.fileDescriptorProto).toEqual(byName.fileDescriptorResponse.fileDescriptorProto);
    stream.end();
    rc.close();
    // Build a stub from the reflected descriptor alone (a FileDescriptorSet is field 1 repeated) and call through it.
    const file = found.fileDescriptorResponse.fileDescriptorProto[0]!;
    const set = Buffer.concat([Buffer.from([0x0a]), varint(file.length), file]);
    const reflected = grpc.loadPackageDefinition(protoLoader.loadFileDescriptorSetFromBuffer(set, { keepCase: false })) as unknown as { tessera: { v1: { Scheduler: grpc.ServiceClientConstructor } } };
    const stub = new reflected.tessera.v1.Scheduler(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure()) as unknown as Record<string, (req: object, cb: (err: grpc.ServiceError | null) => void) => void> & grpc.Client;
    const err = await new Promise<grpc.ServiceError | null>((resolve) => stub['GetJob']!.call(stub, { jobId: 'ghost' }, resolve));
    expect([err?.code, err?.details]).toEqual([grpc.status.NOT_FOUND, 'job "ghost" not found']);
    stub.close();
  });

  test('Plan on the live fleet before any worker registers fails FAILED_PRECONDITION', async () => {
    await expectStatus(client.plan(spec24), grpc.status.FAILED_PRECONDITION, /no live worker has free memory/);
  });

  test('three workers register over the stream and appear live in ListFleet', async () => {
    await connect('w1', 10, 100);
    await connect('w2', 10, 100);
    await connect('w3', 10, 100);
    const fleet = await client.listFleet();
    expect(fleet.map((w) => [w.id, w.status, w.profile.memoryBytes, w.reservedBytes])).toEqual([
      ['w1', 'live', 10 * GB, 0],
      ['w2', 'live', 10 * GB, 0],
      ['w3', 'live', 10 * GB, 0],
    ]);
    expect(fleet[0]!.profile.labels).toEqual({ zone: 'test' });
    await eventually(async () => (await client.listFleet()).every((w) => w.stats?.utilization === 0.5), 2000, 'heartbeat stats');
  });

  test('Plan uses the live workers; an explicit fleet is planned instead when given', async () => {
    const { plan, liveFleet } = await client.plan(spec24);
    expect(liveFleet).toBe(true);
    expect(plan.stages.map((s) => s.deviceId).sort()).toEqual(['w1', 'w2', 'w3']);
    expect(plan.stages.map((s) => s.layers)).toEqual([[0, 2], [2, 4], [4, 6]]);
    // Planning reserves nothing.
    expect((await client.listFleet()).every((w) => w.reservedBytes === 0)).toBe(true);

    const given = [1, 2, 3].map((i) => ({ id: `x${i}`, name: 'X', flops: 1e14, memoryBytes: 9 * GB, linkBandwidth: 1e10, linkLatency: 1e-5 }));
    const explicit = await client.plan(spec24, given);
    expect(explicit.liveFleet).toBe(false);
    expect(explicit.plan.stages.map((s) => s.deviceId).sort()).toEqual(['x1', 'x2', 'x3']);
    await expectStatus(client.plan(spec24, given.slice(0, 2)), grpc.status.RESOURCE_EXHAUSTED, /no plan fits the given fleet \(2 devices\)/);
  });

  test('SubmitJob reserves every stage and pushes assignments; a job that does not fit stays Pending', async () => {
    const a = await client.submitJob('job-a', spec24);
    expect([a.phase, a.reason, a.attempts]).toEqual(['Planned', 'Reserved', 1]);
    expect(a.plan!.stages).toHaveLength(3);
    for (const s of a.plan!.stages) {
      const m = await sessions.get(s.deviceId)!.session.next(assignmentFor('job-a', 1));
      expect(m).toMatchObject({ stage: { index: s.index, layers: s.layers, memoryBytes: s.memoryBytes }, numStages: 3 });
    }
    const fleet = await client.listFleet();
    for (const s of a.plan!.stages) {
      const w = fleet.find((x) => x.id === s.deviceId)!;
      expect([w.reservedBytes, w.freeBytes, w.jobIds]).toEqual([s.memoryBytes, 10 * GB - s.memoryBytes, ['job-a']]);
    }
    // Plan now sees only the free capacity (about 2 GB per device).
    await expectStatus(client.plan(spec24), grpc.status.RESOURCE_EXHAUSTED, /free capacity of the live fleet/);

    const b = await client.submitJob('job-b', spec24);
    expect([b.phase, b.reason, b.plan]).toEqual(['Pending', 'Unschedulable', undefined]);
    expect(b.message).toMatch(/no plan fits the free capacity/);
  });

  test('GetJob and ListJobs show phases', async () => {
    expect((await client.getJob('job-a')).phase).toBe('Planned');
    expect((await client.listJobs()).map((j) => [j.id, j.phase])).toEqual([
      ['job-a', 'Planned'],
      ['job-b', 'Pending'],
    ]);
    expect((await client.listJobs('Pending')).map((j) => j.id)).toEqual(['job-b']);
    expect(await client.listJobs('Complete')).toEqual([]);
  });

  test('bad requests get INVALID_ARGUMENT / NOT_FOUND / ALREADY_EXISTS naming the problem', async () => {
    await expectStatus(client.submitJob('', spec24), grpc.status.INVALID_ARGUMENT, /^job_id: is required$/);
    await expectStatus(client.submitJob('job-a', spec24), grpc.status.ALREADY_EXISTS, /job "job-a" already exists/);
    await expectStatus(client.submitJob('j-empty', { model: { type: 'chain', chain: { layers: [] } } }), grpc.status.INVALID_ARGUMENT, /spec\.model_chain\.layers: must not be empty/);
    const negative = uniformModel(2, 1);
    (negative.layers[1] as { fwdFlops: number }).fwdFlops = -5;
    await expectStatus(client.submitJob('j-neg', { model: { type: 'chain', chain: negative } }), grpc.status.INVALID_ARGUMENT, /spec\.model_chain\.layers\[1\]\.fwd_flops: must be a finite number >= 0, got -5/);
    await expectStatus(client.submitJob('j-ref', { model: { type: 'ref', ref: 'gpt-nano' } }), grpc.status.NOT_FOUND, /model_ref "gpt-nano" is not known/);
    await expectStatus(client.getJob('nope'), grpc.status.NOT_FOUND, /job "nope" not found/);
    await expectStatus(client.cancelJob('nope'), grpc.status.NOT_FOUND, /job "nope" not found/);
    await expectStatus(client.getJob(''), grpc.status.INVALID_ARGUMENT, /job_id: is required/);
    // Fields the typed client cannot leave out, sent raw.
    const raw = client as unknown as { call: (t: unknown, m: string, r: object) => Promise<unknown>; client: unknown };
    await expectStatus(raw.call(raw.client, 'SubmitJob', { jobId: 'j-nospec' }), grpc.status.INVALID_ARGUMENT, /^spec: is required$/);
    await expectStatus(raw.call(raw.client, 'SubmitJob', { jobId: 'j-nomodel', spec: { microBatches: 4 } }), grpc.status.INVALID_ARGUMENT, /spec\.model: one of model_chain or model_ref is required/);
    await expectStatus(raw.call(raw.client, 'Plan', {}), grpc.status.INVALID_ARGUMENT, /^spec: is required$/);
    // None of the rejected jobs exist.
    expect((await client.listJobs()).map((j) => j.id)).toEqual(['job-a', 'job-b']);
  });

  test('a worker stream must register first, with a valid profile', async () => {
    const raw = client as unknown as { client: Record<string, () => grpc.ClientDuplexStream<object, object>> };
    const stream = raw.client['RegisterWorker']!.call(raw.client);
    const status = new Promise<grpc.StatusObject>((r) => stream.on('status', r));
    stream.on('error', () => {});
    stream.write({ heartbeat: {} });
    expect(await status).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/heartbeat before registration/) });

    const bad = client.connectWorker('w-bad', { ...profile(10), memoryBytes: 0 });
    expect(await bad.closed).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/register\.profile\.memory_bytes: must be a finite number > 0/) });
    expect((await client.listFleet()).map((w) => w.id)).toEqual(['w1', 'w2', 'w3']);
  });

  test('CancelJob releases the reservation, revokes the stages, and admits the pending job', async () => {
    const a = await client.getJob('job-a');
    const cancelled = await client.cancelJob('job-a');
    expect([cancelled.phase, cancelled.reason, cancelled.plan]).toEqual(['Cancelled', 'CancelledByUser', undefined]);
    for (const s of a.plan!.stages) expect(await sessions.get(s.deviceId)!.session.next((m) => m.type === 'revocation' && m.jobId === 'job-a')).toMatchObject({ code: 'CancelledByUser' });
    // Cancelling again is a no-op.
    expect((await client.cancelJob('job-a')).phase).toBe('Cancelled');
    // job-b was waiting for exactly this capacity.
    const b = await client.getJob('job-b');
    expect([b.phase, b.reason, b.attempts]).toEqual(['Planned', 'Reserved', 1]);
    const fleet = await client.listFleet();
    expect(fleet.map((w) => w.jobIds)).toEqual([['job-b'], ['job-b'], ['job-b']]);
  });

  test('stage reports move a job to Running, then Complete, releasing its capacity', async () => {
    const b = await client.getJob('job-b');
    const [s0, s1, s2] = b.plan!.stages;
    sessions.get(s0!.deviceId)!.session.report('job-b', 0, 'running');
    await eventually(async () => (await client.getJob('job-b')).phase === 'Running', 2000, 'job-b Running');
    // A report for a stage the worker does not hold is ignored, not fatal.
    sessions.get(s0!.deviceId)!.session.report('job-b', 1, 'complete');
    for (const s of [s0!, s1!, s2!]) sessions.get(s.deviceId)!.session.report('job-b', s.index, 'complete');
    await eventually(async () => (await client.getJob('job-b')).phase === 'Complete', 2000, 'job-b Complete');
    expect((await client.listFleet()).every((w) => w.reservedBytes === 0 && w.status === 'live')).toBe(true);
    await expectStatus(client.cancelJob('job-b'), grpc.status.FAILED_PRECONDITION, /job "job-b" is Complete/);
    expect(lines.some((l) => l.includes('ignored report'))).toBe(true);
  });

  test('a silent worker is declared lost; its job is re-planned on the rest, then goes Pending when nothing fits', async () => {
    await connect('w4', 10, 10); // slowest: the planner leaves it out while the fast ones are free
    const c = await client.submitJob('job-c', spec24);
    expect(c.phase).toBe('Planned');
    expect(c.plan!.stages.map((s) => s.deviceId).sort()).toEqual(['w1', 'w2', 'w3']);

    const victim = c.plan!.stages[1]!.deviceId;
    silence(victim);
    const closed = await sessions.get(victim)!.session.closed;
    expect(closed).toMatchObject({ code: grpc.status.UNAVAILABLE, details: expect.stringMatching(new RegExp(`worker "${victim}" declared lost: no heartbeat for \\d+ ms`)) });
    // the surviving stages are revoked with the typed code their workers act on (cmd/worker leaves them to the driver)
    const survivor = c.plan!.stages.find((s) => s.deviceId !== victim)!.deviceId;
    expect(await sessions.get(survivor)!.session.next((m) => m.type === 'revocation' && m.jobId === 'job-c')).toMatchObject({ code: 'WorkerLost', reason: expect.stringMatching(/^WorkerLost: /) });

    await eventually(async () => (await client.getJob('job-c')).attempts === 2, 3000, 'job-c re-planned');
    const again = await client.getJob('job-c');
    expect([again.phase, again.reason]).toEqual(['Planned', 'Replanned']);
    const used = again.plan!.stages.map((s) => s.deviceId).sort();
    expect(used).toEqual(['w1', 'w2', 'w3', 'w4'].filter((w) => w !== victim));
    await sessions.get('w4')!.session.next(assignmentFor('job-c', 2));
    const fleet = await client.listFleet();
    expect(fleet.find((w) => w.id === victim)).toMatchObject({ status: 'lost', reservedBytes: 0, freeBytes: 0, jobIds: [] });
    expect(lines.some((l) => l.startsWith(`worker ${victim} lost`) && l.includes('job-c'))).toBe(true);

    // Lose one more: two workers cannot carry three stages.
    const second = used.find((w) => w !== 'w4')!;
    silence(second);
    await eventually(async () => (await client.getJob('job-c')).phase === 'Pending', 3000, 'job-c Pending');
    const pending = await client.getJob('job-c');
    expect(pending.reason).toBe('WorkerLost');
    expect(pending.message).toMatch(/no plan fits the free capacity of the live fleet \(2 devices\)/);
    expect(pending.plan).toBeUndefined();
    expect((await client.listFleet()).every((w) => w.reservedBytes === 0)).toBe(true);

    // The worker comes back on a new stream: job-c is admitted again.
    sessions.get(second)!.session.cancel();
    await connect(second, 10, 100);
    await eventually(async () => (await client.getJob('job-c')).phase === 'Planned', 3000, 'job-c Planned after rejoin');
    expect((await client.getJob('job-c')).attempts).toBe(3);
  });

  test('a second session for a live worker replaces the first; the worker stays live and gets its stages again', async () => {
    const c = await client.getJob('job-c');
    const id = c.plan!.stages[1]!.deviceId;
    const old = sessions.get(id)!;
    clearInterval(old.beat);
    const fresh = client.connectWorker(id, profile(10, id === 'w4' ? 10 : 100));
    await fresh.next((m) => m.type === 'ack');
    await fresh.next(assignmentFor('job-c', c.attempts));
    expect(await old.session.closed).toMatchObject({ code: grpc.status.ABORTED, details: expect.stringMatching(/registered again on another stream/) });
    sessions.set(id, { session: fresh, beat: setInterval(() => fresh.heartbeat(), 50) });
    const again = await client.getJob('job-c');
    expect([again.phase, again.attempts]).toEqual(['Planned', c.attempts]);
    expect((await client.listFleet()).find((w) => w.id === id)!.status).toBe('live');
  });

  test('a worker whose stream ends is lost at once, without waiting for the timeout', async () => {
    const c = await client.getJob('job-c');
    const victim = c.plan!.stages[0]!.deviceId;
    const { session, beat } = sessions.get(victim)!;
    clearInterval(beat);
    const started = Date.now();
    session.close();
    await eventually(async () => (await client.listFleet()).find((w) => w.id === victim)!.status === 'lost', 2000, 'victim lost');
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS);
    expect((await client.getJob('job-c')).phase).toBe('Pending');
  });
});
