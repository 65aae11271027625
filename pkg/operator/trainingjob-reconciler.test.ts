import { readFileSync } from 'node:fs';
import type { V1Pod } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { fakeNodeObject } from '../../test/k8s/cluster.js';
import { readProfiles, type ModelChain } from '../planner/index.js';
import type { JobRunner, RunProgress, RunView } from './job-runner.js';
import type { ModelCoster } from './model-source.js';
import { InProcessPlanner, type NodeLike, type Planner } from './planner.js';
import { DEFAULT_POD_TEMPLATE, FINALIZER, TrainingJobReconciler, type Action, type RawJob, type Snapshot } from './trainingjob-reconciler.js';

const KEY = 'ns/gpt-small';
const NOW = new Date('2026-01-02T03:04:05Z');
const example = parseYaml(readFileSync(new URL('../../manifests/examples/gpt-small.yaml', import.meta.url), 'utf8'));

const chain: ModelChain = {
  layers: Array.from({ length: 4 }, () => ({ fwdFlops: 1e12, bwdFlops: 2e12, paramBytes: 1e8, optimizerStateBytes: 14, activationBytesOut: 1e6, stashBytes: 1e6 })),
};
const costed: ModelCoster = { chain: async () => chain };
const uncostable: ModelCoster = {
  chain: async () => {
    throw new Error('configmap ns/gpt-small: cannot read (403)');
  },
};

const job = (over: { spec?: Record<string, unknown>; finalizers?: string[]; deletionTimestamp?: string } = {}): RawJob => ({
  apiVersion: 'tessera.dev/v1alpha1',
  kind: 'TrainingJob',
  metadata: { name: 'gpt-small', namespace: 'ns', uid: 'u1', generation: 1, finalizers: over.finalizers ?? [FINALIZER], ...(over.deletionTimestamp ? { deletionTimestamp: over.deletionTimestamp } : {}) },
  spec: { ...example.spec, ...over.spec },
});
const nodes = (...names: string[]): NodeLike[] => names.map((name) => fakeNodeObject({ name }));

function setup(coster: ModelCoster = costed) {
  const planner = new InProcessPlanner();
  const r = new TrainingJobReconciler({ planner, coster, writer: { apply: async () => {} }, profiles: readProfiles(), template: DEFAULT_POD_TEMPLATE, now: () => NOW });
  return { planner, r };
}

/** What the apiserver, scheduler and kwok would make of the actions: the next snapshot. */
function applied(snap: Snapshot, actions: readonly Action[]): Snapshot {
  let pods = [...snap.pods];
  let j = snap.job!;
  for (const a of actions) {
    if (a.type === 'updateStatus') j = { ...j, status: a.status };
    if (a.type === 'createPod') {
      const node = a.pod.spec!.affinity!.nodeAffinity!.requiredDuringSchedulingIgnoredDuringExecution!.nodeSelectorTerms[0]!.matchFields![0]!.values![0]!;
      pods.push({ ...a.pod, spec: { ...a.pod.spec!, nodeName: node }, status: { phase: 'Running' } } as V1Pod);
    }
    if (a.type === 'deletePod') pods = pods.filter((p) => p.metadata?.name !== a.name);
  }
  return { ...snap, job: j, pods };
}
const types = (actions: readonly Action[]) => actions.map((a) => a.type);

describe('TrainingJobReconciler.decide', () => {
  it('a job that is gone releases its hold and is done (NotFound is success)', async () => {
    const { r } = setup();
    expect(await r.decide(KEY, { job: undefined, pods: [], nodes: [] })).toEqual({ actions: [{ type: 'release' }], pacing: { type: 'done' } });
  });

  it('adds the finalizer first and nothing else', async () => {
    const { r } = setup();
    expect(types((await r.decide(KEY, { job: job({ finalizers: [] }), pods: [], nodes: nodes('a') })).actions)).toEqual(['addFinalizer']);
  });

  it('an invalid spec: Failed with reason InvalidSpec and the parser message, a Warning event, then quiet', async () => {
    const { r } = setup();
    const snap: Snapshot = { job: job({ spec: { data: { ...example.spec.data, microBatches: 0 } } }), pods: [], nodes: nodes('a') };
    const first = await r.decide(KEY, snap);
    expect(types(first.actions)).toEqual(['updateStatus', 'event']);
    const status = (first.actions[0] as Extract<Action, { type: 'updateStatus' }>).status;
    expect(status.phase).toBe('Failed');
    expect(status.conditions).toEqual([expect.objectContaining({ type: 'Failed', status: 'True', reason: 'InvalidSpec', message: expect.stringContaining('spec.data.microBatches') })]);
    expect(first.actions[1]).toMatchObject({ eventType: 'Warning', reason: 'InvalidSpec' });
    expect((await r.decide(KEY, applied(snap, first.actions))).actions).toEqual([]);
  });

  it('plans a costed job, creates one pod per stage, then a second reconcile writes nothing', async () => {
    const { r, planner } = setup();
    const snap: Snapshot = { job: job(), pods: [], nodes: nodes('a', 'b', 'c') };
    const first = await r.decide(KEY, snap);
    const status = (first.actions[0] as Extract<Action, { type: 'updateStatus' }>).status;
    const n = status.plan!.stages!.length;
    expect(n).toBeGreaterThanOrEqual(1);
    expect(n).toBeLessThanOrEqual(2);
    expect(types(first.actions)).toEqual(['updateStatus', ...Array(n).fill('createPod'), 'event']);
    expect(status).toMatchObject({ phase: 'Planned', observedGeneration: 1, stageCount: n });
    expect(status.conditions!.find((c) => c.type === 'Planned')).toMatchObject({ status: 'True', reason: 'Planned' });
    expect(planner.heldBy(KEY)).toHaveLength(n);
    const second = applied(snap, first.actions);
    const again = await r.decide(KEY, second);
    // Pods came up Running: only the Running condition flips, once.
    expect(types(again.actions)).toEqual(['updateStatus']);
    const third = await r.decide(KEY, applied(second, again.actions));
    expect(third).toEqual({ actions: [], pacing: { type: 'done' } });
  });

  it('stage pods get the configured CPU and memory and always one whole GPU', async () => {
    const r = new TrainingJobReconciler({ planner: new InProcessPlanner(), coster: costed, writer: { apply: async () => {} }, profiles: readProfiles(), now: () => NOW,
      template: { ...DEFAULT_POD_TEMPLATE, resources: { requests: { cpu: '1', memory: '2Gi', 'nvidia.com/gpu': '8' }, limits: { memory: '16Gi' } } } });
    const res = await r.decide(KEY, { job: job(), pods: [], nodes: nodes('a', 'b', 'c') });
    const pods = res.actions.filter((a): a is Extract<Action, { type: 'createPod' }> => a.type === 'createPod');
    expect(pods.length).toBeGreaterThan(0);
    for (const p of pods) expect(p.pod.spec!.containers[0]!.resources).toEqual({ requests: { cpu: '1', memory: '2Gi', 'nvidia.com/gpu': '1' }, limits: { memory: '16Gi', 'nvidia.com/gpu': '1' } });
  });

  it('a model that cannot be costed: even split over maxStages nodes, said in the Planned condition', async () => {
    const { r } = setup(uncostable);
    const res = await r.decide(KEY, { job: job(), pods: [], nodes: nodes('a', 'b', 'c') });
    const status = (res.actions[0] as Extract<Action, { type: 'updateStatus' }>).status;
    expect(status.plan!.stages!.length).toBe(2);
    expect(status.conditions!.find((c) => c.type === 'Planned')).toMatchObject({ reason: 'EvenSplit', message: expect.stringContaining('could not be costed (configmap ns/gpt-small: cannot read (403))') });
  });

  it('no GPU free: Planned False NoCapacity, retried with backoff', async () => {
    const { r } = setup();
    const res = await r.decide(KEY, { job: job(), pods: [], nodes: [] });
    expect(res.pacing).toEqual({ type: 'retry', reason: 'NoCapacity' });
    expect((res.actions[0] as Extract<Action, { type: 'updateStatus' }>).status.conditions![0]).toMatchObject({ type: 'Planned', status: 'False', reason: 'NoCapacity' });
  });

  it('two jobs never share a GPU (gang holds)', async () => {
    const { r } = setup(uncostable);
    const a = await r.decide('ns/a', { job: job(), pods: [], nodes: nodes('a', 'b', 'c') });
    const b = await r.decide('ns/b', { job: job(), pods: [], nodes: nodes('a', 'b', 'c') });
    const nodesOf = (res: typeof a) => (res.actions[0] as Extract<Action, { type: 'updateStatus' }>).status.plan!.stages!.map((s) => s.node);
    expect(nodesOf(a)).toHaveLength(2);
    expect(nodesOf(b)).toHaveLength(1);
    expect(nodesOf(a)).not.toContain(nodesOf(b)[0]);
  });

  it('a lost node: a new plan without it, the stale pod deleted, Degraded True and retried', async () => {
    const { r } = setup(uncostable);
    let snap: Snapshot = { job: job(), pods: [], nodes: nodes('a', 'b', 'c') };
    snap = applied(snap, (await r.decide(KEY, snap)).actions);
    const lost = snap.job!.status!.plan!.stages![0]!.node;
    snap = { ...snap, nodes: snap.nodes.filter((n) => n.metadata?.name !== lost) };
    const res = await r.decide(KEY, snap);
    const status = (res.actions[0] as Extract<Action, { type: 'updateStatus' }>).status;
    expect(status.plan!.stages!.map((s) => s.node)).not.toContain(lost);
    expect(status.conditions!.find((c) => c.type === 'Degraded')).toMatchObject({ status: 'True', reason: 'NodeLost' });
    expect(res.actions).toContainEqual({ type: 'deletePod', name: 'gpt-small-s0' });
    expect(res.pacing.type).toBe('retry');
  });

  it('a hold the planner lost (e.g. a restarted scheduler): re-planned and held again; the same nodes are free, so every pod stays', async () => {
    const planner = new InProcessPlanner();
    let lost = false;
    const lossy: Planner = { plan: (q) => planner.plan(q), hold: async (k, n) => (lost ? false : planner.hold(k, n)), release: (k) => planner.release(k) };
    const r = new TrainingJobReconciler({ planner: lossy, coster: costed, writer: { apply: async () => {} }, profiles: readProfiles(), template: DEFAULT_POD_TEMPLATE, now: () => NOW });
    let snap: Snapshot = { job: job(), pods: [], nodes: nodes('a', 'b', 'c') };
    snap = applied(snap, (await r.decide(KEY, snap)).actions);
    snap = applied(snap, (await r.decide(KEY, snap)).actions);
    const before = snap.job!.status!.plan!.stages!.map((s) => s.node);
    await planner.release(KEY); // the capacity is no longer held anywhere
    lost = true;
    const res = await r.decide(KEY, snap);
    lost = false;
    expect(types(res.actions).filter((t) => t === 'createPod' || t === 'deletePod')).toEqual([]);
    expect(res.actions).toContainEqual(expect.objectContaining({ type: 'event', reason: 'Planned' }));
    const status = (res.actions.find((a) => a.type === 'updateStatus') as Extract<Action, { type: 'updateStatus' }> | undefined)?.status ?? snap.job!.status!;
    expect(status.plan!.stages!.map((s) => s.node)).toEqual(before);
    expect(planner.heldBy(KEY)).toHaveLength(before.length); // reserved again
  });

  it('suspend deletes pods, releases and keeps the plan; deletion releases and lifts the finalizer', async () => {
    const { r, planner } = setup();
    let snap: Snapshot = { job: job(), pods: [], nodes: nodes('a', 'b') };
    snap = applied(snap, (await r.decide(KEY, snap)).actions);
    const plan = snap.job!.status!.plan;
    const susp = await r.decide(KEY, { ...snap, job: { ...snap.job!, spec: { ...(snap.job!.spec as object), suspend: true } } });
    expect(types(susp.actions).filter((t) => t === 'deletePod')).toHaveLength(snap.pods.length);
    const status = (susp.actions.find((a) => a.type === 'updateStatus') as Extract<Action, { type: 'updateStatus' }>).status;
    expect(status.phase).toBe('Suspended');
    expect(status.plan).toEqual(plan);
    expect(types(susp.actions)).toContain('release');
    expect(planner.heldBy(KEY).length).toBeGreaterThan(0); // decide does not commit

    const del = await r.decide(KEY, { ...snap, job: { ...snap.job!, metadata: { ...snap.job!.metadata, deletionTimestamp: NOW.toISOString() } } });
    expect(types(del.actions)).toEqual([...snap.pods.map(() => 'deletePod'), 'release', 'removeFinalizer']);
  });
});

describe('TrainingJobReconciler.decide with a JobRunner (training run phase)', () => {
  /** The runner is the reconciler's injected capability; decide only reads its view (from the snapshot). */
  const runner: JobRunner = { view: () => undefined, start: () => {}, stop: () => {}, forget: () => {}, subscribe: () => {}, stopAll: async () => {} };
  const statusOf = (actions: readonly Action[]) => (actions.find((a) => a.type === 'updateStatus') as Extract<Action, { type: 'updateStatus' }> | undefined)?.status;
  const events = (actions: readonly Action[]) => actions.flatMap((a) => (a.type === 'event' ? [a.reason] : []));
  const workers = ['gpt-small-s0', 'gpt-small-s1'];
  const progress = (step: number, extra: Partial<RunProgress> = {}): RunProgress => ({ step, loss: 5 - step / 10, samplesPerSecond: 12.345, traceRoot: 'ab'.repeat(32), traceSteps: step, ...extra });

  /** A planned job whose stage pods all run (uncostable model: an even split over both nodes). */
  async function planned() {
    const r = new TrainingJobReconciler({ planner: new InProcessPlanner(), coster: uncostable, writer: { apply: async () => {} }, profiles: readProfiles(), template: DEFAULT_POD_TEMPLATE, runner, now: () => NOW });
    let snap: Snapshot = { job: job(), pods: [], nodes: nodes('a', 'b') };
    snap = applied(snap, (await r.decide(KEY, snap)).actions);
    return { r, snap };
  }

  it('starts a run once every stage pod runs, stage i on the worker of pod i; no run before', async () => {
    const r = new TrainingJobReconciler({ planner: new InProcessPlanner(), coster: uncostable, writer: { apply: async () => {} }, profiles: readProfiles(), template: DEFAULT_POD_TEMPLATE, runner, now: () => NOW });
    const first = await r.decide(KEY, { job: job(), pods: [], nodes: nodes('a', 'b') });
    expect(types(first.actions)).not.toContain('startRun');
    const { snap } = await planned();
    const res = await r.decide(KEY, snap);
    const start = res.actions.find((a) => a.type === 'startRun') as Extract<Action, { type: 'startRun' }>;
    expect(start.request.workers).toEqual(workers);
    expect(statusOf(res.actions)).toMatchObject({ phase: 'Planned' });
    expect(statusOf(res.actions)!.conditions!.find((c) => c.type === 'Running')).toMatchObject({ status: 'False', reason: 'Starting' });
    // Pod args take their values from the env, the worker id from the pod name (downward API).
    const pod = (first.actions.find((a) => a.type === 'createPod') as Extract<Action, { type: 'createPod' }>).pod;
    expect(pod.spec!.containers[0]!.args).toEqual(['--id', '$(TESSERA_WORKER_ID)', '--ns', '$(TESSERA_NAMESPACE)']);
    expect(pod.spec!.containers[0]!.env).toContainEqual({ name: 'TESSERA_WORKER_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
  });

  it.each([
    ['starting', { type: 'starting', workers } as RunView, 'Planned', [], 'Starting'],
    ['running', { type: 'running', workers, progress: progress(3), startStep: 0 } as RunView, 'Running', ['TrainingStarted'], 'Training'],
    ['running after a checkpoint', { type: 'running', workers, progress: progress(10, { lastCheckpointStep: 10, lastCheckpoint: 'e2e/x/step-10' }), startStep: 0 } as RunView, 'Running', ['TrainingStarted', 'Checkpointed'], 'Training'],
    ['succeeded', { type: 'succeeded', progress: progress(20, { lastCheckpointStep: 20 }), result: { digest: `0x${'cd'.repeat(32)}`, step: 20, finalTraceRoot: 'ab'.repeat(32), model: { store: 'jetstream', bucket: 'b', location: 'e2e/x/model.onnx' } } } as RunView, 'Succeeded', ['Checkpointed', 'Completed'], 'Completed'],
    ['failed', { type: 'failed', reason: 'DataUnavailableError', message: 'configmap ns/x: key not present' } as RunView, 'Failed', ['TrainingFailed'], 'TrainingFailed'],
  ])('run %s: phase, Running condition and events mirror the view, then quiet', async (_name, view, phase, evs, runningReason) => {
    const { r, snap } = await planned();
    const s = { ...snap, run: view };
    const res = await r.decide(KEY, s);
    const st = statusOf(res.actions)!;
    expect(st.phase).toBe(phase);
    expect(events(res.actions)).toEqual(evs);
    expect(types(res.actions)).not.toContain('startRun');
    expect(st.conditions!.find((c) => c.type === 'Running')!.reason).toBe(runningReason);
    if (view.progress) {
      expect(st.progress).toMatchObject({ step: view.progress.step, loss: view.progress.loss!.toFixed(4), samplesPerSecond: 12.35 });
      expect(st.trace).toEqual({ root: 'ab'.repeat(32), stepsCovered: view.progress.step });
    }
    if (phase === 'Failed') expect(st.conditions!.find((c) => c.type === 'Failed')).toMatchObject({ status: 'True', reason: 'TrainingFailed', message: 'DataUnavailableError: configmap ns/x: key not present' });
    if (phase === 'Succeeded') expect(st.conditions!.find((c) => c.type === 'Complete')).toMatchObject({ status: 'True', reason: 'Completed' });
    // The result is written with phase Succeeded, and only then.
    expect(st.result).toEqual(view.type === 'succeeded' ? view.result : undefined);
    const next = applied(s, res.actions);
    const again = await r.decide(KEY, next);
    // A finished job's pods go and its GPUs are released; anything else is quiet.
    expect(again.actions).toEqual(phase === 'Succeeded' || phase === 'Failed' ? [...workers.map((name) => ({ type: 'deletePod', name })), { type: 'release' }] : []);
  });

  it('a run stopped by a lost stage restarts only once the stage pods are back', async () => {
    const { r, snap } = await planned();
    const stopped: RunView = { type: 'stopped', reason: 'StageLostError', progress: progress(7, { lastCheckpointStep: 5 }) };
    const running = { ...snap, job: { ...snap.job!, status: { ...snap.job!.status, phase: 'Running' as const } }, run: stopped };
    const gone = await r.decide(KEY, { ...running, pods: running.pods.filter((p) => p.metadata?.name !== 'gpt-small-s1') });
    expect(types(gone.actions)).toContain('createPod');
    expect(types(gone.actions)).not.toContain('startRun');
    expect(statusOf(gone.actions)).toMatchObject({ phase: 'Running' });
    const back = await r.decide(KEY, running);
    expect(back.actions.find((a) => a.type === 'startRun')).toMatchObject({ request: { workers } });
    // The new run trains: a TrainingStarted event names the checkpoint step it resumed from.
    const resumed = await r.decide(KEY, { ...applied(running, back.actions), run: { type: 'running', workers, progress: progress(5, { lastCheckpointStep: 5 }), startStep: 5 } });
    expect(resumed.actions.filter((a) => a.type === 'event')).toEqual([{ type: 'event', eventType: 'Normal', reason: 'TrainingStarted', message: 'training from step 5 (resumed from its checkpoint) on 2 stage worker(s)' }]);
  });

  it('a run that starts and finishes between two reconciles still gets its TrainingStarted event; a mirrored one does not get two', async () => {
    const { r, snap } = await planned();
    const result = { digest: `0x${'cd'.repeat(32)}`, step: 30, finalTraceRoot: 'ab'.repeat(32), model: { store: 'jetstream', bucket: 'b', location: 'e2e/x/model.onnx' } };
    const first = await r.decide(KEY, { ...snap, run: { type: 'running', workers, progress: progress(30), startStep: 0 } });
    const mirrored = applied(snap, first.actions);
    expect(statusOf(first.actions)!.conditions!.find((c) => c.type === 'Running')!.message).toBe('training from step 0 on 2 stage worker(s)');
    // The first run ended (its result could not be stored); the next one resumed at 30 and finished unseen.
    const unseen = await r.decide(KEY, { ...mirrored, run: { type: 'succeeded', progress: progress(30, { lastCheckpointStep: 30 }), result, startStep: 30 } });
    expect(events(unseen.actions)).toEqual(['TrainingStarted', 'Checkpointed', 'Completed']);
    expect(unseen.actions.find((a) => a.type === 'event')).toMatchObject({ message: 'training from step 30 (resumed from its checkpoint)' });
    // The same run, seen running first: no second TrainingStarted when it finishes.
    const seen = await r.decide(KEY, { ...mirrored, run: { type: 'succeeded', progress: progress(30, { lastCheckpointStep: 30 }), result, startStep: 0 } });
    expect(events(seen.actions)).toEqual(['Checkpointed', 'Completed']);
  });

  it('suspend while running: stop after a checkpoint first, pods stay until the run stopped, then go', async () => {
    const { r, snap } = await planned();
    const suspended = { ...snap, job: { ...snap.job!, spec: { ...(snap.job!.spec as object), suspend: true } } };
    const a = await r.decide(KEY, { ...suspended, run: { type: 'running', workers, progress: progress(4), startStep: 0 } });
    expect(types(a.actions)).toEqual(['updateStatus', 'stopRun']);
    expect(a.actions[1]).toEqual({ type: 'stopRun', how: 'checkpoint' });
    const b = await r.decide(KEY, { ...suspended, job: { ...suspended.job, status: statusOf(a.actions) }, run: { type: 'stopping', workers, progress: progress(4) } });
    expect(b.actions).toEqual([]);
    const c = await r.decide(KEY, { ...suspended, run: { type: 'stopped', reason: 'Stopped', progress: progress(5, { lastCheckpointStep: 5 }) } });
    expect(types(c.actions).filter((t) => t === 'deletePod')).toHaveLength(2);
    expect(statusOf(c.actions)).toMatchObject({ phase: 'Suspended', progress: { step: 5, lastCheckpointStep: 5 } });
  });

  it('deleting or losing the job stops its run at once', async () => {
    const { r, snap } = await planned();
    const run: RunView = { type: 'running', workers, progress: progress(2), startStep: 0 };
    const del = await r.decide(KEY, { ...snap, run, job: { ...snap.job!, metadata: { ...snap.job!.metadata, deletionTimestamp: NOW.toISOString() } } });
    expect(del.actions[0]).toEqual({ type: 'stopRun', how: 'abort' });
    const gone = await r.decide(KEY, { job: undefined, pods: [], nodes: [], run });
    expect(gone.actions).toEqual([{ type: 'stopRun', how: 'abort' }, { type: 'forgetRun' }, { type: 'release' }]);
  });
});
