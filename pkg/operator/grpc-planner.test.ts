import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { fakeNodeObject } from '../../test/k8s/cluster.js';
import { parseTrainingJob, type TrainingJobSpec } from '../k8s/index.js';
import { readProfiles, type ModelChain } from '../planner/index.js';
import { JobPhase, SchedulerClient, SchedulerServer } from '../scheduler/index.js';
import { GrpcPlanner, keyOfSchedulerJob } from './grpc-planner.js';
import { NoCapacityError, PlanFailedError, PlannerConfigError, SchedulerUnavailableError, createPlanner, fleetFromNodes, plannerNames, type PlanRequest } from './planner.js';
import { DEFAULT_POD_TEMPLATE, FINALIZER, TrainingJobReconciler, type Action, type RawJob } from './trainingjob-reconciler.js';

// A real SchedulerServer on a loopback port; the planner talks to it through SchedulerClient.

const example = parseYaml(readFileSync(new URL('../../manifests/examples/gpt-small.yaml', import.meta.url), 'utf8'));
const profiles = readProfiles();
const spec = (over: Record<string, unknown> = {}): TrainingJobSpec =>
  parseTrainingJob({ apiVersion: 'tessera.dev/v1alpha1', kind: 'TrainingJob', metadata: { name: 'j', namespace: 'ns' }, spec: { ...example.spec, ...over } }).spec;
const fleet = fleetFromNodes(['a', 'b', 'c'].map((name) => fakeNodeObject({ name })), profiles); // 3 x A100 80 GB (72 GB usable)
const GB = 1e9;
/** `layers` layers of `gb` GB weights each (no optimizer state, small activations). */
const chain = (layers: number, gb: number): ModelChain => ({
  layers: Array.from({ length: layers }, (_, i) => ({ name: `l${i}`, fwdFlops: 1e12, bwdFlops: 2e12, paramBytes: gb * GB, optimizerStateBytes: 0, activationBytesOut: 1e6, stashBytes: 1e6 })),
});
const req = (key: string, model: PlanRequest['model'], over: Record<string, unknown> = {}): PlanRequest => ({ key, spec: spec(over), fleet, model });

describe('GrpcPlanner against a real scheduler', () => {
  let server: SchedulerServer;
  let client: SchedulerClient;
  let planner: GrpcPlanner;
  const ledger = () => Object.fromEntries(server.core.ledger.devices().map((d) => [d.deviceId, d.heldBytes]));

  beforeAll(async () => {
    server = new SchedulerServer({ host: '127.0.0.1', port: 0 });
    await server.start();
    client = new SchedulerClient(`127.0.0.1:${server.port}`);
    planner = new GrpcPlanner(client, `127.0.0.1:${server.port}`);
  });
  afterAll(async () => {
    client.close();
    await server.stop(200);
  });

  it('is registered by name next to in-process; grpc without an address is refused', () => {
    expect(plannerNames()).toEqual(expect.arrayContaining(['grpc', 'in-process']));
    expect(() => createPlanner('grpc')).toThrow(PlannerConfigError);
    expect(() => createPlanner('nope')).toThrow(/unknown; known planners: .*grpc/);
  });

  it('plans through SubmitJob with the Node fleet: the scheduler reserves every stage (gang) and the plan names nodes', async () => {
    const plan = await planner.plan(req('ns/one', { chain: chain(4, 30) }, { placement: {} })); // 120 GB: needs 2 of the 72 GB devices
    expect(plan.method).toBe('costed');
    expect(plan.stages.length).toBeGreaterThanOrEqual(2);
    expect(plan.stages.every((s) => ['a', 'b', 'c'].includes(s.node))).toBe(true);
    const jobId = planner.jobIdOf('ns/one')!;
    expect(keyOfSchedulerJob(jobId)).toBe('ns/one');
    const job = await client.getJob(jobId);
    expect(job.phase).toBe(JobPhase.Planned);
    expect(job.plan!.stages.map((s) => s.deviceId)).toEqual(planner.heldBy('ns/one'));
    const held = ledger();
    for (const s of job.plan!.stages) expect(held[s.deviceId]).toBe(s.memoryBytes);
    expect(plan.stages.map((s) => s.memoryBytes)).toEqual(job.plan!.stages.map((s) => s.memoryBytes));
  });

  it('a second job gets only GPUs the first does not hold; too few left is NoCapacity', async () => {
    const one = new Set(planner.heldBy('ns/one'));
    const plan = await planner.plan(req('ns/two', { chain: chain(2, 1) }, { placement: {} }));
    expect(planner.heldBy('ns/two').some((d) => one.has(d))).toBe(false);
    expect(plan.stages.length).toBeGreaterThanOrEqual(1);
    await expect(planner.plan(req('ns/three', { chain: chain(2, 1) }, { placement: {}, pipeline: { ...example.spec.pipeline, stages: 2 } }))).rejects.toThrow(NoCapacityError);
    await planner.release('ns/two');
  });

  it('a job that does not fit: PlanFailed with the scheduler text (stage, bytes short), nothing left reserved or pending', async () => {
    const before = ledger();
    // 3 x 50 GB on two 77 GB devices: the total fits, no contiguous split does.
    const two = fleetFromNodes(['x', 'y'].map((name) => fakeNodeObject({ name })), profiles);
    const err = await planner.plan({ ...req('ns/big', { chain: chain(3, 50) }, { placement: {} }), fleet: two }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PlanFailedError);
    expect((err as Error).message).toMatch(
      /^ns\/big: scheduler: no plan fits the free capacity of the given fleet \(2 devices\): .*stage 0 on device "[xy]\/0" \(A100-SXM-80GB\), layers \[0, 2\), needs 100004000000 bytes .* but has 77309411328 bytes .*: short by 22694588672 bytes/,
    );
    expect(ledger()).toEqual({ ...before, 'x/0': 0, 'y/0': 0 }); // the devices joined the ledger; nothing is held
    expect((await client.listJobs(JobPhase.Pending)).filter((j) => keyOfSchedulerJob(j.id) === 'ns/big')).toEqual([]);
  });

  it('a re-plan that fails keeps the old plan\'s GPUs out of other jobs\' fleets', async () => {
    await planner.plan(req('ns/re', { chain: chain(2, 1) }, { placement: {} }));
    const old = [...planner.heldBy('ns/re')];
    await expect(planner.plan(req('ns/re', { chain: chain(1, 100) }, { placement: {} }))).rejects.toThrow(PlanFailedError);
    expect(planner.heldBy('ns/re')).toEqual(old);
    // ns/one holds 2 of the 3 GPUs and ns/re (still) the third.
    expect(old).toHaveLength(1);
    await expect(planner.plan(req('ns/other', { chain: chain(2, 1) }, { placement: {} }))).rejects.toThrow('ns/other: 0 free GPU(s) match the placement, 1 needed');
    await planner.release('ns/re');
    expect(planner.heldBy('ns/re')).toEqual([]);
  });

  it('an uncostable model: an even split the scheduler records on the chosen devices', async () => {
    const plan = await planner.plan(req('ns/even', { error: 'configmap missing' }, { placement: { maxStages: 1 } }));
    expect(plan.method).toBe('even-split');
    expect(plan.stages).toHaveLength(1);
    expect(plan.note).toMatch(/could not be costed \(configmap missing\)/);
    expect((await client.getJob(planner.jobIdOf('ns/even')!)).phase).toBe(JobPhase.Planned);
    await planner.release('ns/even');
  });

  it('a restarted operator finds its holds with ListJobs; an unknown key has none (re-plan)', async () => {
    const again = new GrpcPlanner(client);
    expect(await again.hold('ns/one')).toBe(true);
    expect(again.heldBy('ns/one')).toEqual(planner.heldBy('ns/one'));
    expect(await again.hold('ns/never')).toBe(false);
  });

  it('a hold the scheduler no longer has (cancelled behind the operator\'s back): hold() is false and forgotten, a new plan holds again', async () => {
    const planner = new GrpcPlanner(client, `127.0.0.1:${server.port}`, undefined, { recheckMs: 0 }); // re-reads the holds on every call
    await planner.plan(req('ns/gone', { chain: chain(1, 1) }, { placement: { maxStages: 1 } }));
    const jobId = planner.jobIdOf('ns/gone')!;
    expect(await planner.hold('ns/gone')).toBe(true);
    await client.cancelJob(jobId);
    expect(await planner.hold('ns/gone')).toBe(false);
    expect(planner.heldBy('ns/gone')).toEqual([]);
    await planner.plan(req('ns/gone', { chain: chain(1, 1) }, { placement: { maxStages: 1 } }));
    expect((await client.getJob(planner.jobIdOf('ns/gone')!)).phase).toBe(JobPhase.Planned);
    expect(await planner.hold('ns/gone')).toBe(true);
    await planner.release('ns/gone');
  });

  it('holds are re-read from the scheduler at most every recheckMs (one ListJobs for all jobs, not a call per reconcile)', async () => {
    let t = 0;
    let lists = 0;
    const counting = { ...client, submitJob: client.submitJob.bind(client), cancelJob: client.cancelJob.bind(client), listJobs: () => { lists++; return client.listJobs(); } };
    const planner = new GrpcPlanner(counting, 'scheduler', undefined, { recheckMs: 5000, now: () => t });
    await planner.plan(req('ns/tick', { chain: chain(1, 1) }, { placement: { maxStages: 1 } }));
    await client.cancelJob(planner.jobIdOf('ns/tick')!);
    const before = lists;
    t = 4999;
    expect(await planner.hold('ns/tick')).toBe(true); // not re-read yet
    expect(await planner.hold('ns/tick')).toBe(true);
    expect(lists).toBe(before);
    t = 5000;
    expect(await planner.hold('ns/tick')).toBe(false);
    expect(lists).toBe(before + 1);
  });

  it('release cancels the job: its capacity is free in the ledger; releasing twice is fine', async () => {
    const jobId = planner.jobIdOf('ns/one')!;
    const devices = planner.heldBy('ns/one');
    await planner.release('ns/one');
    await planner.release('ns/one');
    expect((await client.getJob(jobId)).phase).toBe(JobPhase.Cancelled);
    const held = ledger();
    for (const d of devices) expect(held[d]).toBe(0);
    expect(planner.heldBy('ns/one')).toEqual([]);
  });

  it('scheduler unavailable: SchedulerUnavailableError; the reconciler writes a SchedulerUnavailable condition and retries', async () => {
    const gone = new SchedulerClient('127.0.0.1:1', { deadlineMs: 2000 });
    const p = new GrpcPlanner(gone, '127.0.0.1:1');
    await expect(p.plan(req('ns/x', { chain: chain(2, 1) }))).rejects.toThrow(SchedulerUnavailableError);
    await expect(p.release('ns/x')).rejects.toThrow(/scheduler 127\.0\.0\.1:1 unavailable \(ListJobs\)/);
    const r = new TrainingJobReconciler({ planner: p, coster: { chain: async () => chain(2, 1) }, writer: { apply: async () => {} }, profiles, template: DEFAULT_POD_TEMPLATE });
    const raw: RawJob = { apiVersion: 'tessera.dev/v1alpha1', kind: 'TrainingJob', metadata: { name: 'x', namespace: 'ns', uid: 'u', generation: 1, finalizers: [FINALIZER] }, spec: example.spec };
    const out = await r.decide('ns/x', { job: raw, pods: [], nodes: ['a'].map((name) => fakeNodeObject({ name })) });
    expect(out.pacing).toEqual({ type: 'retry', reason: 'SchedulerUnavailable' });
    const status = (out.actions.find((a) => a.type === 'updateStatus') as Extract<Action, { type: 'updateStatus' }>).status;
    expect(status.phase).toBe('Pending');
    expect(status.conditions).toContainEqual(expect.objectContaining({ type: 'Planned', status: 'False', reason: 'SchedulerUnavailable', message: expect.stringContaining('scheduler 127.0.0.1:1 unavailable') }));
    gone.close();
  });
});

describe('GrpcPlanner and a restarted scheduler', () => {
  it('the new scheduler has no holds: hold() is false (the reconciler re-plans, reserving again); while it is down the hold is assumed', async () => {
    const first = new SchedulerServer({ host: '127.0.0.1', port: 0 });
    await first.start();
    const port = first.port;
    const client = new SchedulerClient(`127.0.0.1:${port}`, { deadlineMs: 2000 });
    const planner = new GrpcPlanner(client, `127.0.0.1:${port}`, undefined, { recheckMs: 0 });
    let second: SchedulerServer | undefined;
    try {
      await planner.plan(req('ns/r', { chain: chain(1, 1) }, { placement: { maxStages: 1 } }));
      expect(await planner.hold('ns/r')).toBe(true);
      await first.stop(200);
      expect(await planner.hold('ns/r')).toBe(true); // unreachable: running jobs are left alone
      second = new SchedulerServer({ host: '127.0.0.1', port });
      await second.start();
      expect(second.core.ledger.devices().every((d) => d.heldBytes === 0)).toBe(true); // its ledger starts empty
      // The client reconnects with backoff; meanwhile the hold is assumed, then the answer is NotFound.
      const until = Date.now() + 20_000;
      while (await planner.hold('ns/r')) {
        if (Date.now() > until) throw new Error('hold() still true 20 s after the scheduler restarted');
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(planner.heldBy('ns/r')).toEqual([]);
      const plan = await planner.plan(req('ns/r', { chain: chain(1, 1) }, { placement: { maxStages: 1 } }));
      const held = Object.fromEntries(second.core.ledger.devices().map((d) => [d.deviceId, d.heldBytes]));
      expect(planner.heldBy('ns/r').map((d) => held[d])).toEqual(plan.stages.map((s) => s.memoryBytes));
      expect(await planner.hold('ns/r')).toBe(true);
    } finally {
      client.close();
      await second?.stop(200);
      await first.stop(200).catch(() => undefined);
    }
  }, 60_000);
});
