import { GradientSums, clipScale, globalNorm, meanAndSumSq, scaleGradient } from './accumulate.js';
import { ScheduleError } from './errors.js';

const f32 = (...v: number[]) => Float32Array.from(v);
// Values whose float32 sum depends on the order of the adds.
const parts = [f32(1e8, 1), f32(-1e8, 3), f32(3, 1e-8), f32(0.1, 7)];

describe('GradientSums', () => {
  test('adds in micro-batch order whatever order the micro-batches arrive in', () => {
    const inOrder = new GradientSums();
    parts.forEach((g, j) => inOrder.add('w', j, g));
    const want = inOrder.take('w')!;
    expect(want[0]).toBe(Math.fround(Math.fround(Math.fround(1e8 + -1e8) + 3) + Math.fround(0.1)));
    for (const order of [[3, 2, 1, 0], [1, 0, 3, 2], [2, 0, 3, 1]]) {
      const s = new GradientSums();
      for (const j of order) s.add('w', j, parts[j]!);
      expect(Array.from(s.take('w')!)).toEqual(Array.from(want));
    }
  });

  test('the first add copies: the caller may reuse its buffer', () => {
    const s = new GradientSums();
    const g = f32(1, 2);
    s.add('w', 0, g);
    g[0] = 100;
    s.add('w', 1, f32(1, 1));
    expect(Array.from(s.get('w')!)).toEqual([2, 3]);
  });

  test('addSum (a tied weight\'s other reader) comes after the micro-batches; take forgets the name', () => {
    const s = new GradientSums();
    s.add('w', 0, f32(1e8));
    s.add('w', 1, f32(1));
    s.addSum('w', f32(-1e8));
    expect(s.take('w')![0]).toBe(Math.fround(Math.fround(1e8 + 1) - 1e8));
    expect(s.take('w')).toBeUndefined();
  });

  test('a micro-batch that never arrives is reported, not silently skipped', () => {
    const s = new GradientSums();
    s.add('w', 1, f32(1));
    s.add('w', 2, f32(1));
    expect(() => s.get('w')).toThrow(new ScheduleError('gradient of "w": micro-batch 0 never arrived (have 1, 2)'));
  });
});

describe('norm and clip', () => {
  test('meanAndSumSq divides in place and returns the float64 sum of squares of the float32 results', () => {
    const g = f32(3, 6, 1);
    expect(meanAndSumSq(g, 3)).toBe(1 + 4 + Math.fround(1 / 3) ** 2);
    expect(Array.from(g)).toEqual([1, 2, Math.fround(1 / 3)]);
  });

  test('globalNorm adds in the order given; clipScale is float32(clip / (norm + 1e-6)) above clip, else 1', () => {
    expect(globalNorm([9, 16])).toBe(5);
    expect(globalNorm([])).toBe(0);
    expect(clipScale(5, 1)).toBe(Math.fround(1 / (5 + 1e-6)));
    expect(clipScale(0.5, 1)).toBe(1);
    expect(clipScale(5, undefined)).toBe(1);
    const g = f32(1, 2);
    scaleGradient(g, clipScale(5, 1));
    expect(g[1]).toBe(Math.fround(2 * Math.fround(1 / (5 + 1e-6))));
  });
});
