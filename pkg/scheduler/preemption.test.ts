import { compareClass, orderCandidates, preemptionTargets, type FitCheck, type PreemptionCandidate, type PriorityClass } from './preemption.js';

const local = (priority = 0): PriorityClass => ({ priority, source: 'local' });
const network = (priority = 0): PriorityClass => ({ priority, source: 'network' });

/** Builder: a candidate holding `gb` on each listed device. */
function cand(jobId: string, cls: PriorityClass, seq: number, holds: Record<string, number>): PreemptionCandidate {
  return { jobId, class: cls, seq, holds: new Map(Object.entries(holds)) };
}

/** Fits when every device has at least `need[d]` free (a fixed placement). */
function needs(need: Record<string, number>): FitCheck & { calls: number } {
  const f = {
    calls: 0,
    fits(free: ReadonlyMap<string, number>): boolean {
      f.calls++;
      return Object.entries(need).every(([d, n]) => (free.get(d) ?? 0) >= n);
    },
  };
  return f;
}

/** Fits when any one device has at least `n` free (the planner may place it anywhere). */
const anyDevice = (n: number): FitCheck => ({ fits: (free) => [...free.values()].some((v) => v >= n) });

test('class order: priority first, then local above network', () => {
  expect(compareClass(local(), network())).toBeGreaterThan(0);
  expect(compareClass(network(1), local(0))).toBeGreaterThan(0);
  expect(compareClass(local(), local())).toBe(0);
  expect(compareClass(network(), network())).toBe(0);
});

test('candidates: local preempts network only; lowest class first, then most recently admitted first', () => {
  const all = [cand('n-old', network(), 1, {}), cand('l', local(), 2, {}), cand('n-new', network(), 3, {}), cand('n-neg', network(-1), 4, {}), cand('l-neg', local(-1), 5, {}), cand('n-hi', network(9), 6, {})];
  expect(orderCandidates(local(), all).map((c) => c.jobId)).toEqual(['n-neg', 'n-new', 'n-old', 'n-hi']);
  expect(orderCandidates(local(5), all).map((c) => c.jobId)).toEqual(['n-neg', 'n-new', 'n-old', 'n-hi']);
  expect(orderCandidates(network(9), all)).toEqual([]);
});

interface Row {
  name: string;
  preemptor: PriorityClass;
  candidates: PreemptionCandidate[];
  free: Record<string, number>;
  fit: FitCheck;
  want: string[] | undefined;
  exactMaxCandidates?: number;
}

const rows: Row[] = [
  {
    name: 'one network job in the way is preempted',
    preemptor: local(), candidates: [cand('net', network(), 1, { a: 6 })], free: { a: 4 }, fit: needs({ a: 8 }), want: ['net'],
  },
  {
    name: 'a job of the same class is never preempted',
    preemptor: local(), candidates: [cand('other', local(), 1, { a: 6 })], free: { a: 4 }, fit: needs({ a: 8 }), want: undefined,
  },
  {
    name: 'a network job never preempts a local one',
    preemptor: network(), candidates: [cand('loc', local(), 1, { a: 6 })], free: { a: 0 }, fit: needs({ a: 1 }), want: undefined,
  },
  {
    name: 'nothing when even all victims would not make room',
    preemptor: local(), candidates: [cand('n1', network(), 1, { a: 2 }), cand('n2', network(), 2, { a: 2 })], free: { a: 1 }, fit: needs({ a: 8 }), want: undefined,
  },
  {
    name: 'a lower-priority local job is not preempted, a network one is',
    preemptor: local(1), candidates: [cand('local0', local(0), 1, { a: 6 }), cand('net0', network(0), 2, { a: 6 })], free: { a: 0 }, fit: needs({ a: 5 }), want: ['net0'],
  },
  {
    name: 'lowest priority network job goes first when either would do',
    preemptor: local(), candidates: [cand('net-hi', network(3), 2, { a: 6 }), cand('net-lo', network(1), 1, { a: 6 })], free: { a: 0 }, fit: needs({ a: 5 }), want: ['net-lo'],
  },
  {
    name: 'fits already: no victims',
    preemptor: local(), candidates: [cand('net', network(), 1, { a: 6 })], free: { a: 9 }, fit: needs({ a: 8 }), want: [],
  },
  {
    name: 'most recently admitted first among equals',
    preemptor: local(), candidates: [cand('old', network(), 1, { a: 6 }), cand('new', network(), 2, { a: 6 })], free: { a: 0 }, fit: needs({ a: 5 }), want: ['new'],
  },
  {
    name: 'fewest victims: one big job rather than two small ones listed first',
    preemptor: local(),
    candidates: [cand('small1', network(), 3, { a: 3 }), cand('small2', network(), 2, { a: 3 }), cand('big', network(), 1, { a: 6 })],
    free: { a: 0 }, fit: needs({ a: 6 }), want: ['big'],
  },
  {
    name: 'a gang spanning two devices is released whole, and only if needed',
    preemptor: local(),
    candidates: [cand('gang', network(), 2, { a: 4, b: 4 }), cand('solo', network(), 1, { b: 4 })],
    free: { a: 0, b: 0 }, fit: needs({ b: 4 }), want: ['gang'],
  },
  {
    name: 'two victims when one is not enough',
    preemptor: local(),
    candidates: [cand('x', network(), 1, { a: 4 }), cand('y', network(), 2, { b: 4 })],
    free: { a: 0, b: 0 }, fit: needs({ a: 4, b: 4 }), want: ['y', 'x'],
  },
  {
    name: 'placement-free fit: the victim on the device with most room',
    preemptor: local(),
    candidates: [cand('onA', network(), 2, { a: 2 }), cand('onB', network(), 1, { b: 5 })],
    free: { a: 1, b: 1 }, fit: anyDevice(6), want: ['onB'],
  },
  {
    name: 'greedy + fill-back above the exact limit gives back victims not needed',
    preemptor: local(),
    candidates: [cand('s1', network(), 3, { a: 1 }), cand('s2', network(), 2, { a: 1 }), cand('big', network(), 1, { a: 6 })],
    free: { a: 0 }, fit: needs({ a: 6 }), want: ['big'], exactMaxCandidates: 0,
  },
];

test.each(rows)('$name', ({ preemptor, candidates, free, fit, want, exactMaxCandidates }) => {
  const got = preemptionTargets(preemptor, candidates, new Map(Object.entries(free)), fit, { exactMaxCandidates });
  if (want === undefined) expect(got).toBeUndefined();
  else expect(got?.slice().sort()).toEqual([...want].sort());
});

test('no victim in the answer can be given back (minimal), exact or greedy, on seeded random cases', () => {
  let state = 7;
  const rnd = (n: number): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return (state >>> 16) % n;
  };
  let withVictims = 0;
  for (let trial = 0; trial < 200; trial++) {
    const devices = ['a', 'b', 'c'];
    const cands = Array.from({ length: 1 + rnd(7) }, (_, i) => {
      const holds: Record<string, number> = {};
      for (const d of devices) if (rnd(2)) holds[d] = 1 + rnd(4);
      return cand(`j${i}`, network(rnd(3)), i, holds);
    });
    const free = new Map(devices.map((d) => [d, rnd(3)]));
    const need = Object.fromEntries(devices.map((d) => [d, rnd(6)]));
    for (const exactMaxCandidates of [0, 10]) {
      const fit = needs(need);
      const got = preemptionTargets(local(), cands, free, fit, { exactMaxCandidates });
      if (!got) {
        expect(fit.fits(new Map(devices.map((d) => [d, (free.get(d) ?? 0) + cands.reduce((s, c) => s + (c.holds.get(d) ?? 0), 0)])))).toBe(false);
        continue;
      }
      const chosen = cands.filter((c) => got.includes(c.jobId));
      if (chosen.length > 1) withVictims++;
      const freed = (set: PreemptionCandidate[]): Map<string, number> => {
        const out = new Map(free);
        for (const c of set) for (const [d, b] of c.holds) out.set(d, (out.get(d) ?? 0) + b);
        return out;
      };
      expect(fit.fits(freed(chosen))).toBe(true);
      for (const c of chosen) {
        if (fit.fits(freed(chosen.filter((x) => x !== c)))) throw new Error(JSON.stringify({ exactMaxCandidates, got, c: c.jobId, cands: cands.map((x) => [x.jobId, x.class, [...x.holds]]), free: [...free], need }));
      }
      if (exactMaxCandidates === 10) {
        // exact: no smaller set fits (brute force over all subsets)
        for (let mask = 0; mask < 1 << cands.length; mask++) {
          const set = cands.filter((_, i) => mask & (1 << i));
          if (set.length < chosen.length) expect(fit.fits(freed(set))).toBe(false);
        }
      }
    }
  }
  expect(withVictims).toBeGreaterThan(20); // the cases do exercise multi-victim answers
});
