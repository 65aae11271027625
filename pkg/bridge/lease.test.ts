import { clipDetail, deadlineCheck } from './lease.js';

test.each([
  { name: 'plenty of time', now: 0n, deadline: 1000n, remainingSteps: 10, secondsPerStep: 1, marginSeconds: 60, fits: true },
  { name: 'margin alone no longer fits', now: 950n, deadline: 1000n, remainingSteps: 1, secondsPerStep: 0.001, marginSeconds: 60, fits: false },
  { name: 'steps at the measured rate do not fit', now: 0n, deadline: 1000n, remainingSteps: 100, secondsPerStep: 9.5, marginSeconds: 60, fits: false },
  { name: 'exactly at the limit does not fit (strictly before the deadline)', now: 0n, deadline: 160n, remainingSteps: 100, secondsPerStep: 1, marginSeconds: 60, fits: false },
  { name: 'deadline already passed', now: 2000n, deadline: 1000n, remainingSteps: 0, secondsPerStep: 0, marginSeconds: 0, fits: false },
])('deadlineCheck: $name', ({ fits, ...o }) => {
  const d = deadlineCheck(o);
  expect(d.type).toBe(fits ? 'fits' : 'release');
  if (d.type === 'release') expect(d.detail).toMatch(/^\d+ steps left at .* s\/step \+ \d+ s margin need \d+ s; \d+ s remain before the deadline$/);
  else expect(d.slackSeconds).toBeGreaterThan(0);
});

test('clipDetail keeps details within the contract limit in UTF-8 bytes', () => {
  expect(clipDetail('short')).toBe('short');
  const long = 'é'.repeat(200); // 400 bytes
  const clipped = clipDetail(long);
  expect(new TextEncoder().encode(clipped).length).toBeLessThanOrEqual(256);
  expect(clipped.endsWith('...')).toBe(true);
  expect(clipped).not.toContain('\uFFFD');
});
