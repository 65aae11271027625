import { WorkQueue } from './queue.js';
import { FakeClock } from './testing.js';

describe('WorkQueue', () => {
  const make = () => {
    const clock = new FakeClock();
    return { clock, q: new WorkQueue({ clock }) };
  };

  it('queues a key once and hands keys out in order', () => {
    const { q } = make();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.length).toBe(2);
    expect([q.next(), q.next(), q.next()]).toEqual(['a', 'b', undefined]);
  });

  it('serializes a key: added while processing, it comes back only after done', () => {
    const { q } = make();
    q.add('a');
    expect(q.next()).toBe('a');
    q.add('a');
    expect(q.next()).toBeUndefined();
    q.done('a');
    expect(q.next()).toBe('a');
    q.done('a');
    expect(q.next()).toBeUndefined();
  });

  it.each([
    [0, 100],
    [1, 200],
    [2, 400],
    [8, 25_600],
    [9, 30_000],
    [30, 30_000],
  ])('after %i failures the retry waits %i ms (base 100, cap 30 s)', (failures, delay) => {
    const { q, clock } = make();
    for (let i = 0; i < failures; i++) q.addRateLimited('k');
    clock.advance(10 ** 9);
    while (q.next() !== undefined) q.done('k');
    expect(q.nextDelay('k')).toBe(delay);
    q.addRateLimited('k');
    clock.advance(delay - 1);
    expect(q.next()).toBeUndefined();
    clock.advance(1);
    expect(q.next()).toBe('k');
  });

  it('forget resets the backoff; failures are per key', () => {
    const { q } = make();
    q.addRateLimited('a');
    q.addRateLimited('a');
    q.addRateLimited('b');
    expect([q.nextDelay('a'), q.nextDelay('b')]).toEqual([400, 200]);
    q.forget('a');
    expect(q.nextDelay('a')).toBe(100);
  });

  it('an earlier addAfter wins over a later one for the same key', () => {
    const { q, clock } = make();
    q.addAfter('a', 500);
    q.addAfter('a', 100);
    q.addAfter('a', 1000);
    clock.advance(100);
    expect(q.next()).toBe('a');
    q.done('a');
    clock.advance(2000);
    expect(q.next()).toBeUndefined();
  });

  it('get waits for a key and resolves undefined on shutdown', async () => {
    const { q } = make();
    const first = q.get();
    q.add('x');
    await expect(first).resolves.toBe('x');
    expect(q.isProcessing('x')).toBe(true);
    const second = q.get();
    q.shutDown();
    await expect(second).resolves.toBeUndefined();
  });
});
