import { BatcherStateError, CorpusTooShortError, LmBatcher, type LmBatch } from './index.js';

const corpus = Int32Array.from({ length: 1000 }, (_, i) => (i * 7919) % 97);

describe('LmBatcher', () => {
  test.each([
    { batch: 4, context: 8 },
    { batch: 1, context: 999 },
  ])('batch $batch x context $context: targets are tokens shifted by one within the corpus', ({ batch, context }) => {
    const b = new LmBatcher({ tokens: corpus, batch, context, seed: 3 });
    for (let s = 0; s < 5; s++) {
      const { tokens, targets, dims, step } = b.next();
      expect(dims).toEqual([batch, context]);
      expect(step).toBe(s);
      for (let r = 0; r < batch; r++) {
        const row = Array.from(tokens.subarray(r * context, (r + 1) * context), Number);
        const off = findWindow(row);
        expect(off).toBeGreaterThanOrEqual(0);
        expect(Array.from(targets.subarray(r * context, (r + 1) * context), Number)).toEqual(Array.from(corpus.subarray(off + 1, off + 1 + context)));
      }
    }
  });

  function findWindow(row: number[]): number {
    for (let off = 0; off + row.length < corpus.length; off++) if (row.every((t, i) => corpus[off + i] === t)) return off;
    return -1;
  }

  const draw = (b: LmBatcher, n: number): LmBatch[] => Array.from({ length: n }, () => b.next());

  test('same seed, same batches; another seed, other batches', () => {
    const opts = { tokens: corpus, batch: 3, context: 5, seed: 11 };
    expect(draw(new LmBatcher(opts), 4)).toEqual(draw(new LmBatcher(opts), 4));
    expect(draw(new LmBatcher({ ...opts, seed: 12 }), 4)).not.toEqual(draw(new LmBatcher(opts), 4));
  });

  test('a run resumed from a saved state draws exactly the batches of an uninterrupted run', () => {
    const opts = { tokens: corpus, batch: 3, context: 5, seed: 11 };
    const uninterrupted = draw(new LmBatcher(opts), 10);
    const first = new LmBatcher(opts);
    draw(first, 6);
    const saved = JSON.parse(JSON.stringify(first.getState()));
    const resumed = LmBatcher.fromState(opts, saved);
    expect(draw(resumed, 4)).toEqual(uninterrupted.slice(6));
  });

  test.each([
    { name: 'corpus too short', run: () => new LmBatcher({ tokens: new Uint8Array(8), batch: 1, context: 8, seed: 1 }), err: CorpusTooShortError },
    { name: 'bad rng state', run: () => LmBatcher.fromState({ tokens: corpus, batch: 1, context: 4, seed: 1 }, { rng: -1, step: 0 }), err: BatcherStateError },
    { name: 'bad step', run: () => LmBatcher.fromState({ tokens: corpus, batch: 1, context: 4, seed: 1 }, { rng: 5, step: 1.5 }), err: BatcherStateError },
    { name: 'zero batch', run: () => new LmBatcher({ tokens: corpus, batch: 0, context: 4, seed: 1 }), err: RangeError },
  ])('$name throws', ({ run, err }) => {
    expect(run).toThrow(err);
  });
});
