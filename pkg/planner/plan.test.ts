import { ChainCosts, evaluate, resolveOptions, stepMs } from './cost.js';
import { InfeasibleReason, PlanInfeasibleError, PlanInputError, costAssignment, evenSplitPlan, pipelineLowerBoundMs, planPipeline, type Device, type LayerCost, type ModelChain, type Plan } from './index.js';
import { bruteForcePlan, orderExhaustiveBottlenecks, randomInstance } from './testing.js';

const relEq = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
/** What the searches minimise, (m + p - 1) x bottleneck; predictedStepMs is the simulated schedule. */
const objective = (plan: Plan): number => stepMs(plan.bottleneckMs, plan.microBatches, plan.stages.length);

/** Re-costs a plan's stages from scratch and checks the invariants every plan must satisfy. */
function checkPlan(model: ModelChain, fleet: readonly Device[], plan: Plan): void {
  const L = model.layers.length;
  expect(plan.stages[0]!.layers[0]).toBe(0);
  expect(plan.stages.at(-1)!.layers[1]).toBe(L);
  plan.stages.forEach((s, i) => {
    expect(s.layers[0]).toBeLessThan(s.layers[1]);
    if (i > 0) expect(s.layers[0]).toBe(plan.stages[i - 1]!.layers[1]);
    expect(s.memoryBytes).toBeLessThanOrEqual(s.memoryAvailable);
  });
  expect(new Set(plan.stages.map((s) => s.deviceId)).size).toBe(plan.stages.length);
  const byId = new Map(fleet.map((d) => [d.id, d]));
  const again = evaluate(
    new ChainCosts(model, plan.microBatches),
    fleet,
    plan.stages.map((s) => ({ device: byId.get(s.deviceId)!, start: s.layers[0], end: s.layers[1] })),
    resolveOptions({ schedule: plan.schedule, microBatches: plan.microBatches }),
    plan.method,
  );
  expect(again.bottleneckMs).toBe(plan.bottleneckMs);
  expect(plan.lowerBoundMs).toBeLessThanOrEqual(plan.predictedStepMs);
  expect(plan.gap).toBeGreaterThanOrEqual(1);
}

describe('exact planner vs exhaustive search', () => {
  // Seeded instances up to 6 devices x 10 layers against the full brute force (orders x cuts).
  const small: [number, number, number, '1f1b' | 'gpipe', number][] = [];
  for (let seed = 1; seed <= 14; seed++) small.push([seed, 2 + (seed % 5), 5 + (seed % 6), seed % 3 === 0 ? 'gpipe' : '1f1b', 1 + (seed % 9)]);
  small.push([101, 6, 10, '1f1b', 8], [102, 6, 10, 'gpipe', 4], [103, 6, 10, '1f1b', 3]);

  const refs = new Map<number, ReturnType<typeof bruteForcePlan>>();
  const reference = (seed: number, n: number, L: number, schedule: '1f1b' | 'gpipe', m: number): ReturnType<typeof bruteForcePlan> => {
    if (!refs.has(seed)) {
      const { model, fleet } = randomInstance(seed, n, L);
      refs.set(seed, bruteForcePlan(model, fleet, { schedule, microBatches: m }));
    }
    return refs.get(seed)!;
  };

  test.each(small)('seed %i: %i devices, %i layers, %s, m=%i', (seed, n, L, schedule, m) => {
    const { model, fleet } = randomInstance(seed, n, L);
    const opts = { schedule, microBatches: m };
    const ref = reference(seed, n, L, schedule, m);
    if (ref.plan === undefined) {
      expect(() => planPipeline(model, fleet, opts)).toThrow(PlanInfeasibleError);
      return;
    }
    const plan = planPipeline(model, fleet, opts);
    expect(plan.method).toBe('exact');
    checkPlan(model, fleet, plan);
    expect(relEq(objective(plan), objective(ref.plan))).toBe(true);
    // Forcing each stage count must reproduce the exhaustive optimum for that count.
    for (let p = 1; p < ref.bestByCount.length; p++) {
      const best = ref.bestByCount[p]!;
      if (!Number.isFinite(best)) {
        expect(() => planPipeline(model, fleet, { ...opts, stages: p })).toThrow(PlanInfeasibleError);
        continue;
      }
      const forced = planPipeline(model, fleet, { ...opts, stages: p });
      expect(forced.stages).toHaveLength(p);
      expect(relEq(forced.bottleneckMs, best)).toBe(true);
    }
  });

  test('the instance family exercises memory: some devices cannot hold everything, some counts are infeasible', () => {
    // Guards the property test against vacuity: if memory never bound, ordering would be trivial.
    let infeasibleCounts = 0;
    for (const [seed, n, L, schedule, m] of small) {
      const ref = reference(seed, n, L, schedule, m);
      infeasibleCounts += ref.bestByCount.slice(1).filter((b) => !Number.isFinite(b)).length;
    }
    expect(infeasibleCounts).toBeGreaterThan(0);
  });

  // 7-8 devices x 24 layers: too big for orders x cuts, so compare with every device order
  // (ordered subsets: 109,600 for 8 devices, 13,699 for 7) with optimal cuts per order.
  test.each([
    [201, 8, '1f1b', 8],
    [202, 7, 'gpipe', 3],
    [203, 7, '1f1b', 16],
  ] as const)('seed %i: %i devices, 24 layers, %s, m=%i, every stage count', (seed, n, schedule, m) => {
    const { model, fleet } = randomInstance(seed, n, 24);
    const opts = { schedule, microBatches: m };
    const ref = orderExhaustiveBottlenecks(model, fleet, opts);
    let feasible = 0;
    for (let p = 1; p <= n; p++) {
      if (!Number.isFinite(ref[p]!)) {
        expect(() => planPipeline(model, fleet, { ...opts, stages: p })).toThrow(PlanInfeasibleError);
        continue;
      }
      feasible++;
      const plan = planPipeline(model, fleet, { ...opts, stages: p });
      checkPlan(model, fleet, plan);
      expect(relEq(plan.bottleneckMs, ref[p]!)).toBe(true);
    }
    expect(feasible).toBeGreaterThan(0);
    const auto = planPipeline(model, fleet, opts);
    const bestStep = Math.min(...ref.map((b, p) => (p === 0 ? Infinity : (m + p - 1) * b)));
    expect(relEq(objective(auto), bestStep)).toBe(true);
  });
});

describe('with optimizer update and action overhead in the cost (Device updateBandwidth, actionOverhead)', () => {
  test.each([
    [21, 4, 7, '1f1b', 8], [22, 5, 8, 'gpipe', 3], [23, 3, 9, '1f1b', 1], [24, 6, 8, '1f1b', 4], [25, 5, 6, 'gpipe', 8],
  ] as const)('seed %i: %i devices, %i layers, %s, m=%i: exact = brute force, heuristic >= exact, bound <= optimum', (seed, n, L, schedule, m) => {
    const { model, fleet } = randomInstance(seed, n, L, { stepCosts: true });
    const opts = { schedule, microBatches: m };
    const ref = bruteForcePlan(model, fleet, opts);
    if (ref.plan === undefined) {
      expect(() => planPipeline(model, fleet, opts)).toThrow(PlanInfeasibleError);
      return;
    }
    const plan = planPipeline(model, fleet, opts);
    checkPlan(model, fleet, plan);
    expect(relEq(objective(plan), objective(ref.plan))).toBe(true);
    for (let p = 1; p < ref.bestByCount.length; p++) {
      if (!Number.isFinite(ref.bestByCount[p]!)) continue;
      expect(relEq(planPipeline(model, fleet, { ...opts, stages: p }).bottleneckMs, ref.bestByCount[p]!)).toBe(true);
    }
    const heur = planPipeline(model, fleet, { ...opts, exactMaxDevices: 0 });
    checkPlan(model, fleet, heur);
    expect(objective(heur)).toBeGreaterThanOrEqual(objective(plan) * (1 - 1e-12));
    expect(pipelineLowerBoundMs(model, fleet, opts)).toBeLessThanOrEqual(objective(plan) * (1 + 1e-12));
    // The new terms are really in play: the same instance without them plans a shorter step.
    const bare = fleet.map(({ updateBandwidth: _u, actionOverhead: _o, ...d }) => d);
    expect(objective(planPipeline(model, bare, opts))).toBeLessThan(objective(plan));
  });

  test('stage compute = FLOPs / FLOP/s + 2 x action overhead + update / m', () => {
    const model: ModelChain = { layers: [layer(), layer({ paramBytes: 1e6, optimizerStateBytes: 3e6 }), layer()] };
    const a = dev('a', { flops: 3e12, updateBandwidth: 1e9, actionOverhead: 0.5e-3, memoryBytes: 1e7 });
    const b = dev('b', { flops: 1e12, memoryBytes: 1e7 });
    const plan = evenSplitPlan(model, [a, b], { microBatches: 4 });
    // a: [0,2): 6e9 / 3e12 = 2 ms + 2 x 0.5 ms + (300 + 4e6) B / 1e9 B/s = 4.0003 ms per step / 4 micro-batches.
    expect(plan.stages[0]!.computeMs).toBeCloseTo(2 + 1 + 4.0003 / 4, 9);
    // b: no update bandwidth or overhead given: FLOPs only, as before.
    expect(plan.stages[1]!.computeMs).toBeCloseTo(3, 9);
    expect(plan.bottleneckMs).toBeCloseTo(Math.max(2 + 1 + 4.0003 / 4, 3, plan.stages[0]!.sendMs), 9);
  });

  test('bad values are named', () => {
    const model: ModelChain = { layers: [layer()] };
    expect(() => planPipeline(model, [dev('a', { updateBandwidth: 0 })])).toThrow(/fleet\[0\]\.updateBandwidth.*must be a number > 0/);
    expect(() => planPipeline(model, [dev('a', { actionOverhead: -1 })])).toThrow(/fleet\[0\]\.actionOverhead.*must be a finite number >= 0/);
    expect(planPipeline(model, [dev('a', { updateBandwidth: Infinity })]).stages[0]!.computeMs).toBeCloseTo(3, 9);
  });
});

describe('costAssignment', () => {
  test('re-costing a plan\'s own stages gives the plan; another fleet model gives its numbers', () => {
    const { model, fleet } = randomInstance(31, 4, 8, { stepCosts: true });
    const plan = planPipeline(model, fleet, { microBatches: 4 });
    const again = costAssignment(model, fleet, plan.stages, { microBatches: 4 });
    expect(again.stages).toEqual(plan.stages);
    expect(again.predictedStepMs).toBe(plan.predictedStepMs);
    const slower = fleet.map((d) => ({ ...d, flops: d.flops / 2 }));
    expect(costAssignment(model, slower, plan.stages, { microBatches: 4 }).predictedStepMs).toBeGreaterThan(plan.predictedStepMs);
  });

  test('rejects gaps, overlaps, unknown and repeated devices', () => {
    const { model, fleet } = randomInstance(32, 3, 6);
    const st = (deviceId: string, a: number, b: number) => ({ deviceId, layers: [a, b] as const });
    expect(() => costAssignment(model, fleet, [st('d0', 0, 3), st('d1', 4, 6)])).toThrow('stages[1].layers: must be [3, k) with 3 < k <= 6, got [4, 6)');
    expect(() => costAssignment(model, fleet, [st('d0', 0, 3), st('d1', 3, 5)])).toThrow('stages: the stages end at layer 5, the chain has 6');
    expect(() => costAssignment(model, fleet, [st('d0', 0, 3), st('x', 3, 6)])).toThrow('stages[1].deviceId: unknown device "x"');
    expect(() => costAssignment(model, fleet, [st('d0', 0, 3), st('d0', 3, 6)])).toThrow('stages[1].deviceId: device "d0" is used twice');
  });
});

describe('heuristic planner', () => {
  test.each([11, 12, 13, 14, 15])('seed %i: valid plan, never better than the exact optimum', (seed) => {
    const { model, fleet } = randomInstance(seed, 6, 10);
    const exact = planPipeline(model, fleet);
    const heur = planPipeline(model, fleet, { exactMaxDevices: 0 });
    expect(heur.method).toBe('heuristic');
    checkPlan(model, fleet, heur);
    expect(objective(heur)).toBeGreaterThanOrEqual(objective(exact) * (1 - 1e-12));
  });

  test.each([1, 2, 3])('honours a forced stage count on a 12-device fleet: %i', (seed) => {
    const { model, fleet } = randomInstance(300 + seed, 12, 16);
    const stages = 2 + seed;
    const plan = planPipeline(model, fleet, { stages });
    expect(plan.method).toBe('heuristic');
    expect(plan.stages).toHaveLength(stages);
    checkPlan(model, fleet, plan);
  });
});

const layer = (over: Partial<LayerCost> = {}): LayerCost => ({
  fwdFlops: 1e9,
  bwdFlops: 2e9,
  paramBytes: 100,
  optimizerStateBytes: 200,
  activationBytesOut: 1000,
  stashBytes: 10,
  ...over,
});
const dev = (id: string, over: Partial<Device> = {}): Device => ({
  id,
  name: 'gpu',
  flops: 1e12,
  memoryBytes: 10_000,
  linkBandwidth: 1e9,
  linkLatency: 0,
  ...over,
});

describe('cost model', () => {
  test('stage numbers follow the documented formulas', () => {
    const model: ModelChain = { layers: [layer(), layer({ activationBytesOut: 4e6 }), layer()] };
    const a = dev('a', { flops: 3e12, linkBandwidth: 4e9 });
    const b = dev('b', { flops: 1e12, linkBandwidth: 1e9, linkLatency: 1e-3 });
    const plan = evenSplitPlan(model, [a, b], { microBatches: 4 });
    // a: layers [0,2) = 6e9 FLOPs / 3e12 = 2 ms; link carries 4e6 B at min(4e9,1e9) + max latency 1 ms = 5 ms.
    const r = (x: number): number => Math.round(x * 1e9) / 1e9;
    expect(plan.stages.map((s) => [s.layers, r(s.computeMs), r(s.sendMs), r(s.recvMs), s.inFlight, s.memoryBytes])).toEqual([
      [[0, 2], 2, 5, 0, 2, 600 + 20 * 2],
      [[2, 3], 3, 0, 5, 1, 300 + 10],
    ]);
    expect(plan.bottleneckStage).toBe(0);
    expect(plan.bottleneckMs).toBeCloseTo(5, 9);
    expect(stepMs(plan.bottleneckMs, 4, 2)).toBeCloseTo((4 + 2 - 1) * 5, 9);
    // Simulated 1F1B (a: F 2/3, BW 4/3 ms; b: F 1, BW 2 ms; 5 ms each way): stage 0 waits a round
    // trip for each of its last two backwards; its BW3 starts at 31 2/3 and ends at 33 ms.
    expect(plan.predictedStepMs).toBeCloseTo(33, 9);
    expect(plan.lowerBoundMs).toBeCloseTo((9e9 * 4) / 4e12 * 1000, 12);
  });

  test('predicted step = the schedule simulated: (m + p - 1) x bottleneck when balanced, less when not', () => {
    // Layers of 1 ms forward + 2 ms backward on 1 TFLOP/s devices; no bytes cross a cut, no latency.
    const free = { activationBytesOut: 0 };
    const balanced: ModelChain = { layers: [layer(free), layer(free), layer(free), layer(free)] };
    for (const schedule of ['1f1b', 'gpipe'] as const) {
      const plan = evenSplitPlan(balanced, [dev('a'), dev('b')], { microBatches: 4, schedule });
      expect(plan.bottleneckMs).toBeCloseTo(6, 9);
      expect(plan.predictedStepMs).toBeCloseTo((4 + 2 - 1) * 6, 9);
    }
    // [0,2) (F 2, BW 4) then [2,3) (F 1, BW 2), 1F1B, m = 4. Stage 0 runs F0 [0,2], F1 [2,4], waits
    // for B0 of stage 1 (F0 [2,3], BW0 [3,5]), then BW0 [5,9] and is never idle again: 4 x 6 + 1 = 25 ms,
    // against (m + p - 1) x 6 = 30 ms.
    const unbalanced: ModelChain = { layers: [layer(free), layer(free), layer(free)] };
    const plan = evenSplitPlan(unbalanced, [dev('a'), dev('b')], { microBatches: 4 });
    expect(stepMs(plan.bottleneckMs, 4, 2)).toBeCloseTo(30, 9);
    expect(plan.predictedStepMs).toBeCloseTo(25, 9);
    expect(costAssignment(unbalanced, [dev('a'), dev('b')], plan.stages, { microBatches: 4 }).predictedStepMs).toBeCloseTo(25, 9);
    // The updates run once, after the last backward of every stage (the global gradient norm is a
    // barrier): 600 B at 150 kB/s = 4 ms on stage 0 -> 29 ms, where the bottleneck formula charges
    // 4 / m per micro-batch on all m + p - 1 periods (35 ms). On stage 1 instead (300 B at 30 kB/s =
    // 10 ms), it still starts at 25 ms, when stage 0's last backward ends, not at 20 ms: 35 ms.
    const withUpdate = evenSplitPlan(unbalanced, [dev('a', { updateBandwidth: 1.5e5 }), dev('b')], { microBatches: 4 });
    expect(stepMs(withUpdate.bottleneckMs, 4, 2)).toBeCloseTo(35, 9);
    expect(withUpdate.predictedStepMs).toBeCloseTo(29, 9);
    expect(evenSplitPlan(unbalanced, [dev('a'), dev('b', { updateBandwidth: 3e4 })], { microBatches: 4 }).predictedStepMs).toBeCloseTo(35, 9);
  });

  test.each([
    ['1f1b', 8, [4, 3, 2, 1]],
    ['1f1b', 2, [2, 2, 2, 1]],
    ['gpipe', 8, [8, 8, 8, 8]],
  ] as const)('%s with m=%i stashes %j micro-batches per stage', (schedule, m, expected) => {
    const model: ModelChain = { layers: [layer(), layer(), layer(), layer()] };
    const plan = evenSplitPlan(model, ['a', 'b', 'c', 'd'].map((id) => dev(id)), { schedule, microBatches: m });
    expect(plan.stages.map((s) => s.inFlight)).toEqual(expected);
  });

  test('using fewer devices is chosen when extra stages only add bubble and links', () => {
    const model: ModelChain = { layers: [layer({ activationBytesOut: 1e9 }), layer()] };
    const plan = planPipeline(model, [dev('fast', { flops: 1e13 }), dev('slow', { flops: 1e11 })]);
    expect(plan.stages.map((s) => s.deviceId)).toEqual(['fast']);
  });
});

describe('infeasibility names the constraint and the bytes', () => {
  const model: ModelChain = { layers: [layer({ name: 'big', paramBytes: 5000 }), layer(), layer()] };
  test.each([
    {
      what: 'fleet total',
      fleet: [dev('a', { memoryBytes: 2800 }), dev('b', { memoryBytes: 2800 })],
      opts: {},
      reason: InfeasibleReason.FleetMemory,
      required: 5830,
      available: 5600,
      message: /model needs at least 5830 bytes .*fleet total is 5600 bytes .*short by 230 bytes/,
    },
    {
      what: 'one layer larger than the largest device',
      fleet: [dev('a', { memoryBytes: 5000 }), dev('b', { memoryBytes: 5000 })],
      opts: {},
      reason: InfeasibleReason.LayerMemory,
      required: 5210,
      available: 5000,
      message: /layer 0 \("big"\) alone needs 5210 bytes .*largest device "a".* 5000 bytes.*short by 210 bytes/,
    },
    {
      what: 'gpipe stashes every micro-batch',
      fleet: [dev('a', { memoryBytes: 5600 }), dev('b', { memoryBytes: 1000 })],
      opts: { schedule: 'gpipe' as const, microBatches: 100 },
      reason: InfeasibleReason.FleetMemory,
      required: 5800 + 3000,
      available: 6600,
      message: /model needs at least 8800 bytes .*activation stash 3000 bytes .*100 in-flight/,
    },
    {
      what: 'too many stages',
      fleet: [dev('a'), dev('b')],
      opts: { stages: 3 },
      reason: InfeasibleReason.StageCount,
      required: undefined,
      available: undefined,
      message: /3 stages requested but at most 2/,
    },
    {
      what: 'fits in total, but no contiguous split does',
      // 'big' (5210) needs a; the other two layers (310, 320 with stash) cannot share b (500).
      fleet: [dev('a', { memoryBytes: 5300 }), dev('b', { memoryBytes: 500 }), dev('c', { memoryBytes: 200 })],
      opts: {},
      reason: InfeasibleReason.NoPartition,
      required: expect.any(Number),
      available: expect.any(Number),
      message: /no contiguous split of 3 layers over 3 devices fits in memory; .*stage \d on device "\w".*short by \d+ bytes/,
    },
  ])('$what', ({ fleet, opts, reason, required, available, message }) => {
    let err: unknown;
    try {
      planPipeline(model, fleet, opts);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PlanInfeasibleError);
    const e = err as PlanInfeasibleError;
    expect(e.name).toBe('PlanInfeasibleError');
    expect(e.reason).toBe(reason);
    expect(e.message).toMatch(message);
    expect(e.requiredBytes).toEqual(required);
    expect(e.availableBytes).toEqual(available);
  });

  test('even split names the overflowing stage, device, layers and shortfall', () => {
    const m: ModelChain = { layers: [layer(), layer(), layer({ paramBytes: 900 })] };
    let err: PlanInfeasibleError | undefined;
    try {
      evenSplitPlan(m, [dev('a'), dev('b'), dev('c', { memoryBytes: 1000 })]);
    } catch (e) {
      err = e as PlanInfeasibleError;
    }
    expect(err?.reason).toBe(InfeasibleReason.StageMemory);
    expect(err).toMatchObject({ stage: 2, deviceId: 'c', layers: [2, 3], requiredBytes: 1110, availableBytes: 1000, shortfallBytes: 110 });
    expect(err?.message).toMatch(/stage 2 on device "c" .*layers \[2, 3\), needs 1110 bytes .*has 1000 bytes .*short by 110 bytes/);
  });

  test.each([
    ['empty chain', { layers: [] }, [dev('a')], 'model.layers'],
    ['negative bytes', { layers: [layer({ stashBytes: -1 })] }, [dev('a')], 'model.layers[0].stashBytes'],
    ['duplicate ids', { layers: [layer()] }, [dev('a'), dev('a')], 'fleet[1].id'],
    ['zero flops', { layers: [layer()] }, [dev('a', { flops: 0 })], 'fleet[0].flops'],
  ] as const)('rejects malformed input: %s', (_, m, fleet, field) => {
    expect(() => planPipeline(m as ModelChain, fleet)).toThrow(expect.objectContaining({ name: 'PlanInputError', field }) as PlanInputError);
  });
});

describe('pipeline lower bound', () => {
  test.each([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])('seed %i: naive bound <= pipeline bound <= exact optimum (auto and every forced count)', (seed) => {
    const { model, fleet } = randomInstance(500 + seed, 2 + (seed % 5), 5 + (seed % 8));
    const opts = { schedule: seed % 3 === 0 ? ('gpipe' as const) : ('1f1b' as const), microBatches: 1 + (seed % 9) };
    for (const stages of ['auto' as const, ...fleet.map((_, i) => i + 1).filter((p) => p <= model.layers.length)]) {
      let plan: Plan;
      try {
        plan = planPipeline(model, fleet, { ...opts, stages });
      } catch (e) {
        if (e instanceof PlanInfeasibleError) continue;
        throw e;
      }
      const bound = pipelineLowerBoundMs(model, fleet, { ...opts, stages });
      expect(bound).toBeLessThanOrEqual(objective(plan) * (1 + 1e-12));
      expect(bound).toBeGreaterThanOrEqual(plan.lowerBoundMs * (1 - 1e-12));
    }
  });

  test('granularity makes it tight: 4 equal layers on 3 equal devices', () => {
    // Some stage holds 2 layers whatever the split, so bottleneck >= 2 x 3 ms; best is p = 2 at (m + 1) x 6 ms.
    const model: ModelChain = { layers: [layer(), layer(), layer(), layer()] };
    const fleet = ['a', 'b', 'c'].map((id) => dev(id, { linkBandwidth: 1e15 }));
    const plan = planPipeline(model, fleet, { microBatches: 4 });
    const bound = pipelineLowerBoundMs(model, fleet, { microBatches: 4 });
    expect(objective(plan)).toBeCloseTo(5 * 6, 9);
    expect(bound / objective(plan)).toBeGreaterThan(1 - 1e-6);
    // Balanced stages: the simulated step is the same, plus two hops of 1000 B at 1e15 B/s.
    expect(plan.predictedStepMs).toBeCloseTo(5 * 6, 6);
    // The naive bound spreads 12 GFLOP x 4 over all 3 TFLOP/s: 16 ms, far below.
    expect(plan.lowerBoundMs).toBeCloseTo(16, 9);
  });
});
