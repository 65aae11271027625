import { ScheduleError, StageOp, UnknownScheduleError, registerSchedule, schedule, simulate, type Action, type Schedule } from './index.js';

const grid = [
  { p: 1, m: 1 }, { p: 1, m: 4 }, { p: 2, m: 1 }, { p: 2, m: 3 }, { p: 4, m: 2 }, { p: 4, m: 4 }, { p: 4, m: 8 }, { p: 3, m: 7 }, { p: 8, m: 16 },
];

describe('schedule', () => {
  describe.each(['gpipe', '1f1b'])('%s', (kind) => {
    test.each(grid)('p=$p m=$m: every stage runs F then BW once per micro-batch, makespan (m+p-1)(tF+tB)', ({ p, m }) => {
      const s = schedule(kind, p, m);
      for (const list of s.actions) {
        expect(list).toHaveLength(2 * m);
        for (let j = 0; j < m; j++) {
          const f = list.findIndex((a) => a.op === StageOp.Forward && a.microBatch === j);
          const bw = list.findIndex((a) => a.op === StageOp.BackwardFused && a.microBatch === j);
          expect(f).toBeGreaterThanOrEqual(0);
          expect(bw).toBeGreaterThan(f);
        }
      }
      for (const [tf, tb] of [[1, 2], [1, 1], [2, 3]] as const) {
        const sim = simulate(s, { f: tf, b: tb / 2, w: tb / 2 });
        expect(sim.makespan).toBeCloseTo((m + p - 1) * (tf + tb), 9);
        expect(sim.bubble).toBeCloseTo((p - 1) / (m + p - 1), 9);
      }
    });
  });

  test.each(grid)('1f1b p=$p m=$m: stage i keeps at most p-i micro-batches in flight; gpipe keeps m', ({ p, m }) => {
    const one = simulate(schedule('1f1b', p, m)).maxInFlight;
    const gp = simulate(schedule('gpipe', p, m)).maxInFlight;
    one.forEach((n, i) => expect(n).toBe(Math.min(p - i, m)));
    gp.forEach((n) => expect(n).toBe(m));
  });

  test('dependencies hold in the simulated timeline (F after the previous stage, BW after the next)', () => {
    for (const kind of ['gpipe', '1f1b']) {
      const s = schedule(kind, 4, 8);
      const sim = simulate(s, { f: 1, b: 1, w: 1 });
      const when = (i: number, op: string, j: number) => sim.starts[i]![s.actions[i]!.findIndex((a) => a.op === op && a.microBatch === j)]!;
      for (let i = 0; i < 4; i++) {
        for (let j = 0; j < 8; j++) {
          if (i > 0) expect(when(i, 'F', j)).toBeGreaterThanOrEqual(when(i - 1, 'F', j) + 1);
          if (i < 3) expect(when(i, 'BW', j)).toBeGreaterThanOrEqual(when(i + 1, 'BW', j) + 2);
        }
      }
    }
  });

  const f = (j: number): Action => ({ op: StageOp.Forward, microBatch: j });
  const bw = (j: number): Action => ({ op: StageOp.BackwardFused, microBatch: j });
  const bad: { name: string; actions: Action[][]; match: RegExp }[] = [
    { name: 'missing forward', actions: [[f(0), bw(0), bw(1)]], match: /before its forward/ },
    { name: 'repeated action', actions: [[f(0), f(0), bw(0), f(1), bw(1)]], match: /appears twice/ },
    { name: 'missing backward', actions: [[f(0), f(1), bw(0)]], match: /not fully backwarded/ },
    { name: 'W before B', actions: [[f(0), { op: 'W', microBatch: 0 }, { op: 'B', microBatch: 0 }, f(1), bw(1)]], match: /before its B/ },
    { name: 'out of range', actions: [[f(0), bw(0), f(2), bw(2)]], match: /out of range/ },
    { name: 'wrong stage count', actions: [[f(0), bw(0), f(1), bw(1)], [f(0), bw(0), f(1), bw(1)]], match: /stage lists/ },
  ];
  test.each(bad)('rejects: $name', ({ actions, match }) => {
    expect(() => simulate({ kind: 'x', stages: 1, microBatches: 2, actions })).toThrow(match);
  });

  test('rejects a deadlock: stage 0 waits for a backward that waits for a forward stage 0 has not sent', () => {
    const s: Schedule = { kind: 'x', stages: 2, microBatches: 2, actions: [[f(0), bw(0), f(1), bw(1)], [f(1), bw(1), f(0), bw(0)]] };
    expect(() => simulate(s)).toThrow(ScheduleError);
    expect(() => simulate(s)).toThrow(/deadlocks/);
  });

  test('unknown kinds are named; registered builders (the zb-h1 extension point) are validated', () => {
    expect(() => schedule('zb-h1', 2, 2)).toThrow(UnknownScheduleError);
    // A split B/W schedule: B on the critical path, W deferred to the end.
    registerSchedule('test-split-bw', (p, m) => Array.from({ length: p }, () => [
      ...Array.from({ length: m }, (_, j) => f(j)),
      ...Array.from({ length: m }, (_, j): Action => ({ op: 'B', microBatch: j })),
      ...Array.from({ length: m }, (_, j): Action => ({ op: 'W', microBatch: j })),
    ]));
    const sim = simulate(schedule('test-split-bw', 4, 4), { f: 1, b: 1, w: 1 });
    // Deferring W takes it off the critical path: the backward sweep pays only B per stage hop.
    expect(sim.makespan).toBeLessThan((4 + 4 - 1) * 3);
    registerSchedule('test-broken', () => [[f(0)]]);
    expect(() => schedule('test-broken', 1, 1)).toThrow(/not fully backwarded/);
  });
  test('per-stage times equal to uniform ones simulate the same timeline', () => {
    for (const kind of ['1f1b', 'gpipe']) {
      const s = schedule(kind, 4, 6);
      const u = simulate(s, { f: 1, b: 2, w: 0.5 });
      const per = simulate(s, Array.from({ length: 4 }, () => ({ f: 1, b: 2, w: 0.5 })), { hop: 0 });
      expect(per.starts).toEqual(u.starts);
      expect(per.makespan).toBe(u.makespan);
      expect(per.ends).toEqual(u.ends);
    }
  });

  test('per-stage durations and hop delays: GPipe p=2 m=2 by hand', () => {
    // s0: F 1, BW 2; s1: F 3, BW 1; 0.5 per hop. s0 F0 [0,1] F1 [1,2]; s1 F0 [1.5,4.5] F1 [4.5,7.5]
    // BW0 [7.5,8.5] BW1 [8.5,9.5]; s0 BW0 ready 9 -> [9,11], BW1 ready 10 -> [11,13].
    const sim = simulate(schedule('gpipe', 2, 2), [{ f: 1, b: 2, w: 0 }, { f: 3, b: 1, w: 0 }], { hop: [0.5] });
    expect(sim.starts).toEqual([[0, 1, 9, 11], [1.5, 4.5, 7.5, 8.5]]);
    expect(sim.ends).toEqual([13, 9.5]);
    expect(sim.makespan).toBe(13);
  });

  test('1F1B pays the last boundary\'s round trip in every steady-state period', () => {
    // p=2: s0 runs F(j+1) and BW(j) between sending F(j) and needing BW(j) back; s1 needs 2 hops + F + BW.
    const m = 6;
    const base = simulate(schedule('1f1b', 2, m), { f: 1, b: 1, w: 0 }).makespan;
    const hop = simulate(schedule('1f1b', 2, m), { f: 1, b: 1, w: 0 }, { hop: 0.25 }).makespan;
    expect(base).toBe((m + 1) * 2);
    expect(hop).toBeGreaterThan(base + 2 * 0.25);
  });

  test('rejects stage times that do not match the stages, or negative times', () => {
    const s = schedule('1f1b', 3, 2);
    expect(() => simulate(s, [{}, {}])).toThrow('2 stage times for 3 stages');
    expect(() => simulate(s, {}, { hop: [1] })).toThrow('1 hop times for 2 stage boundaries');
    expect(() => simulate(s, { f: -1 })).toThrow('f time 0 must be a finite number >= 0, got -1');
    expect(() => simulate(s, {}, { hop: NaN })).toThrow(ScheduleError);
  });
});
