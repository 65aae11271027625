import { FleetRegistry } from './registry.js';
import type { DeviceProfile } from './types.js';

const profile = (memoryBytes = 1000): DeviceProfile => ({ name: 'T4', flops: 1e12, memoryBytes, linkBandwidth: 1e9, linkLatency: 1e-4, labels: {} });

/** Holdings as a fixed map, standing in for the ledger. */
const holdings = (byDevice: Record<string, string[]>) => ({ jobsOn: (id: string) => byDevice[id] ?? [] });

describe('FleetRegistry heartbeats (injected clock)', () => {
  // Three workers register at t=0; each row lists heartbeat times per worker and the check time.
  const cases: { name: string; beats: Record<string, number[]>; at: number; lost: string[] }[] = [
    { name: 'nobody silent past the timeout', beats: { w1: [5000], w2: [9000], w3: [] }, at: 10_000, lost: [] },
    { name: 'exactly at the timeout is still live', beats: { w1: [], w2: [], w3: [] }, at: 10_000, lost: [] },
    { name: 'one ms past the timeout is lost', beats: { w1: [1], w2: [1], w3: [] }, at: 10_001, lost: ['w3'] },
    { name: 'only the silent ones are lost', beats: { w1: [3000, 10_000], w2: [11_000], w3: [2000] }, at: 20_500, lost: ['w1', 'w3'] },
    { name: 'a stale heartbeat does not move time back', beats: { w1: [15_000, 1000], w2: [15_000], w3: [15_000] }, at: 24_000, lost: [] },
  ];

  test.each(cases)('$name', ({ beats, at, lost }) => {
    const reg = new FleetRegistry();
    for (const id of ['w1', 'w2', 'w3']) reg.register(id, profile(), 0);
    for (const [id, times] of Object.entries(beats)) for (const t of times) expect(reg.heartbeat(id, undefined, t)).toBe(true);
    const report = reg.markLost(at, holdings({ w1: ['j1'], w3: ['j1', 'j2'] }));
    expect(report.lost.map((l) => l.workerId)).toEqual(lost);
    const expectJobs = [...new Set(lost.flatMap((id) => ({ w1: ['j1'], w3: ['j1', 'j2'] } as Record<string, string[]>)[id] ?? []))];
    expect(report.affectedJobs).toEqual(expectJobs);
    for (const l of report.lost) expect(l.reason).toMatch(/no heartbeat for \d+ ms \(timeout 10000 ms\)/);
    // Lost once, reported once.
    expect(reg.markLost(at, holdings({})).lost).toEqual([]);
    expect(reg.liveDevices().map((d) => d.id)).toEqual(['w1', 'w2', 'w3'].filter((id) => !lost.includes(id)));
  });

  test('the timeout is configurable', () => {
    const reg = new FleetRegistry({ heartbeatTimeoutMs: 100 });
    reg.register('w1', profile(), 0);
    expect(reg.markLost(100, holdings({})).lost).toEqual([]);
    expect(reg.markLost(101, holdings({})).lost.map((l) => l.workerId)).toEqual(['w1']);
  });

  test('a lost worker ignores heartbeats until it registers again', () => {
    const reg = new FleetRegistry({ heartbeatTimeoutMs: 100 });
    reg.register('w1', profile(), 0);
    reg.markLost(500, holdings({}));
    expect(reg.heartbeat('w1', undefined, 510)).toBe(false);
    expect(reg.get('w1')!.status.type).toBe('lost');
    expect(reg.register('w1', profile(2000), 520)).toEqual({ type: 'rejoined', wasLost: true });
    expect(reg.get('w1')!.status).toEqual({ type: 'live' });
    expect(reg.liveDevices()[0]!.memoryBytes).toBe(2000);
    expect(reg.markLost(620, holdings({})).lost).toEqual([]);
  });

  test('unknown workers cannot heartbeat; disconnect reports jobs once', () => {
    const reg = new FleetRegistry();
    expect(reg.heartbeat('ghost', undefined, 1)).toBe(false);
    reg.register('w1', profile(), 0);
    expect(reg.disconnect('w1', 5, 'stream ended', holdings({ w1: ['j9'] }))).toEqual({ workerId: 'w1', reason: 'stream ended', jobIds: ['j9'] });
    expect(reg.disconnect('w1', 6, 'stream ended', holdings({ w1: ['j9'] }))).toBeUndefined();
  });

  test('heartbeats keep stats and nextDeadline tracks the oldest live worker', () => {
    const reg = new FleetRegistry({ heartbeatTimeoutMs: 1000 });
    reg.register('a', profile(), 0);
    reg.register('b', profile(), 200);
    expect(reg.nextDeadline()).toBe(1000);
    reg.heartbeat('a', { utilization: 0.5, memoryUsedBytes: 10, measuredFlops: 0 }, 700);
    expect(reg.nextDeadline()).toBe(1200);
    expect(reg.get('a')!.stats).toEqual({ utilization: 0.5, memoryUsedBytes: 10, measuredFlops: 0 });
  });
});
