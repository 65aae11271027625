import { CATALOG } from './catalog.js';
import {
  FleetFileError, NodeProfileError, ProfileError, parseFleet, parseProfiles, profileForNode, profilePeak, readProfiles, type DeviceProfile,
} from './profiles.js';

const profiles = readProfiles();

describe('bundled profiles.yaml', () => {
  test('lists the documented accelerators, each with a source', () => {
    expect([...profiles.keys()]).toEqual([
      'H100-SXM-80GB', 'H100-PCIe-80GB', 'A100-SXM-40GB', 'A100-SXM-80GB', 'L40S-48GB', 'L4-24GB', 'RTX-4090-24GB', 'T4-16GB',
      'Apple-M2-Ultra-192GB', 'Apple-M3-Max-128GB', 'CPU-32core',
    ]);
    for (const p of profiles.values()) expect(p.source.length).toBeGreaterThan(10);
  });

  test.each(['H100-SXM-80GB', 'A100-SXM-40GB', 'L4-24GB', 'T4-16GB'] as const)('%s agrees with the in-code CATALOG', (name) => {
    const p = profiles.get(name)!;
    const c = CATALOG[name];
    expect(p.peak.fp32).toBeCloseTo(c.fp32, -6);
    expect(p.peak.tf32 ?? null).toEqual(c.tf32 === null ? null : expect.closeTo(c.tf32, -6));
    expect(p.peak.bf16 ?? null).toEqual(c.bf16 === null ? null : expect.closeTo(c.bf16, -6));
    expect(p.memoryBytes).toBe(c.memoryBytes);
    expect(p.memoryBandwidth).toBeCloseTo(c.memoryBandwidth, -3);
    expect(p.network.bandwidth).toBeCloseTo(c.network.bandwidth, -3);
    expect(p.network.latency).toBeCloseTo(c.network.latency, 12);
  });

  test('units are converted: TFLOP/s, GiB, GB/s, Gb/s, us', () => {
    const h = profiles.get('H100-SXM-80GB')!;
    expect(h.peak.bf16).toBeCloseTo(989.4e12, -6);
    expect(h.memoryBytes).toBe(80 * 2 ** 30);
    expect(h.network.bandwidth).toBe(50e9);
    expect(profiles.get('Apple-M2-Ultra-192GB')!.kind).toBe('unified');
  });

  test.each([
    ['T4-16GB', 'mixed', 65e12],
    ['T4-16GB', 'tf32', 8.1e12],
    ['Apple-M3-Max-128GB', 'mixed', 14.1e12],
    ['CPU-32core', 'mixed', 6.66e12],
    ['A100-SXM-80GB', 'tf32', 156e12],
  ] as const)('profilePeak(%s, %s) falls back along bf16 -> fp16 -> fp32', (name, precision, expected) => {
    expect(profilePeak(profiles.get(name)!, precision)).toBeCloseTo(expected, -6);
  });
});

const entry = (fields: string): string => `profiles:\n  X:\n${fields.split('\n').map((l) => `    ${l}`).join('\n')}\n`;
const good = `kind: gpu
fp32TFlops: 10
tf32TFlops: null
bf16TFlops: 20
fp16TFlops: 20
memoryGiB: 8
memoryBandwidthGBps: 100
network: { kind: eth, gbps: 8, latencyUs: 10 }
source: made up`;

describe('parseProfiles errors name the entry and field', () => {
  test('a good entry parses', () => {
    const p = parseProfiles(entry(good)).get('X')!;
    expect(p.peak).toEqual({ fp32: 10e12, tf32: null, bf16: 20e12, fp16: 20e12 });
    expect(p.network).toEqual({ kind: 'eth', bandwidth: 1e9, latency: 1e-5 });
  });

  test.each([
    ['fp32TFlops', good.replace('fp32TFlops: 10', 'fp32TFlops: -1')],
    ['fp32TFlops', good.replace('fp32TFlops: 10', 'fp32TFlops: fast')],
    ['kind', good.replace('kind: gpu', 'kind: tpu')],
    ['memoryGiB', good.replace('memoryGiB: 8\n', '')],
    ['network.gbps', good.replace('gbps: 8', 'gbps: 0')],
    ['source', good.replace('source: made up', 'source: ""')],
    ['memoryGB', `${good}\nmemoryGB: 8`],
    ['kubernetes.products[0]', `${good}\nkubernetes: { products: ['(('] }`],
  ])('%s', (field, fields) => {
    const run = (): unknown => parseProfiles(entry(fields));
    expect(run).toThrow(ProfileError);
    expect(run).toThrow(`profile "X": ${field}:`);
  });

  test('not a mapping of profiles', () => {
    expect(() => parseProfiles('- a\n- b\n')).toThrow(/profiles: expected a mapping/);
  });
});

describe('parseFleet', () => {
  test('bare list: ids per profile, catalog peak x efficiency, memory less the reserve', () => {
    const fleet = parseFleet('- { profile: L4-24GB, count: 2 }\n- profile: T4-16GB\n', profiles);
    expect(fleet.map((d) => d.id)).toEqual(['L4-24GB-0', 'L4-24GB-1', 'T4-16GB-0']);
    expect(fleet[0]!.flops).toBeCloseTo(121e12 * 0.4, -6);
    expect(fleet[0]!.memoryBytes).toBe(Math.floor(24 * 2 ** 30 * 0.9));
    expect(fleet[2]!.linkLatency).toBeCloseTo(30e-6, 12);
  });

  test('measured overrides win; file options apply to the rest', () => {
    const fleet = parseFleet(
      `precision: fp32
efficiency: 0.5
memoryReserve: 0
devices:
  - profile: A100-SXM-40GB
    id: rack
    count: 2
    overrides: { flops: 1.5e14, memory: 3.9e10, bandwidth: 1e10, latency: 2e-6 }
  - { profile: A100-SXM-40GB, id: rack }
`,
      profiles,
    );
    expect(fleet.map((d) => d.id)).toEqual(['rack-0', 'rack-1', 'rack-2']);
    expect(fleet[0]).toEqual({ id: 'rack-0', name: 'A100-SXM-40GB', flops: 1.5e14, memoryBytes: 3.9e10, linkBandwidth: 1e10, linkLatency: 2e-6 });
    expect(fleet[2]!.flops).toBeCloseTo(19.5e12 * 0.5, -6);
    expect(fleet[2]!.memoryBytes).toBe(40 * 2 ** 30);
  });

  test.each([
    ['devices[0].profile', '- profile: B200\n', /unknown profile "B200" \(known: H100-SXM-80GB/],
    ['devices[0].count', '- { profile: L4-24GB, count: 0 }\n', /integer >= 1/],
    ['devices[0].overrides.flops', '- { profile: L4-24GB, overrides: { flops: -3 } }\n', /> 0 in base units/],
    ['devices[0].overrides.speed', '- { profile: L4-24GB, overrides: { speed: 3 } }\n', /unknown override/],
    ['devices[0].overide', '- { profile: L4-24GB, overide: {} }\n', /unknown field/],
    ['efficiency', 'efficiency: 2\ndevices: [{ profile: L4-24GB }]\n', /\(0, 1\]/],
    ['precision', 'precision: fp8\ndevices: [{ profile: L4-24GB }]\n', /fp32, tf32, mixed/],
    ['devices', 'devices: []\n', /non-empty list/],
    ['yaml', '- [unclosed\n', /.+/],
  ])('%s', (path, text, message) => {
    const run = (): unknown => parseFleet(text, profiles);
    expect(run).toThrow(FleetFileError);
    expect(run).toThrow(`fleet file: ${path}:`);
    expect(run).toThrow(message);
  });
});

describe('profileForNode', () => {
  const node = (labels: Record<string, string>, allocatable?: Record<string, string>) => ({ name: 'n1', labels, allocatable });
  test.each<[string, ReturnType<typeof node>, { profile: string; count: number; matchedBy: string } | undefined]>([
    ['our label wins over discovery', node({ 'tessera.dev/device-profile': 'Apple-M2-Ultra-192GB', 'nvidia.com/gpu.product': 'Tesla-T4' }), { profile: 'Apple-M2-Ultra-192GB', count: 1, matchedBy: 'label' }],
    ['our label, GPUs from allocatable', node({ 'tessera.dev/device-profile': 'L40S-48GB' }, { 'nvidia.com/gpu': '4' }), { profile: 'L40S-48GB', count: 4, matchedBy: 'label' }],
    ['H100 SXM product', node({ 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' }, { 'nvidia.com/gpu': '8' }), { profile: 'H100-SXM-80GB', count: 8, matchedBy: 'gpu-product' }],
    ['H100 PCIe product', node({ 'nvidia.com/gpu.product': 'NVIDIA-H100-PCIe' }, { 'nvidia.com/gpu': '2' }), { profile: 'H100-PCIe-80GB', count: 2, matchedBy: 'gpu-product' }],
    ['A100 80GB by memory label', node({ 'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4', 'nvidia.com/gpu.memory': '81920' }), { profile: 'A100-SXM-80GB', count: 1, matchedBy: 'gpu-product' }],
    ['A100 40GB by product name', node({ 'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-40GB', 'nvidia.com/gpu.count': '8' }), { profile: 'A100-SXM-40GB', count: 8, matchedBy: 'gpu-product' }],
    ['A100 80GB by product name', node({ 'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB' }), { profile: 'A100-SXM-80GB', count: 1, matchedBy: 'gpu-product' }],
    ['T4 (Tesla prefix)', node({ 'nvidia.com/gpu.product': 'Tesla-T4' }, { 'nvidia.com/gpu': '1' }), { profile: 'T4-16GB', count: 1, matchedBy: 'gpu-product' }],
    ['L4 is not L40S', node({ 'nvidia.com/gpu.product': 'NVIDIA-L4' }), { profile: 'L4-24GB', count: 1, matchedBy: 'gpu-product' }],
    ['RTX 4090', node({ 'nvidia.com/gpu.product': 'NVIDIA-GeForce-RTX-4090' }), { profile: 'RTX-4090-24GB', count: 1, matchedBy: 'gpu-product' }],
    ['MIG slice: no profile', node({ 'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-40GB-MIG-1g.5gb' }), undefined],
    ['unknown product', node({ 'nvidia.com/gpu.product': 'NVIDIA-B200' }), undefined],
    ['zero allocatable GPUs', node({ 'nvidia.com/gpu.product': 'NVIDIA-L4' }, { 'nvidia.com/gpu': '0' }), undefined],
    ['plain CPU node', node({ 'kubernetes.io/os': 'linux' }), undefined],
  ])('%s', (_what, n, expected) => {
    expect(profileForNode(n, profiles)).toEqual(expected);
  });

  test('an unknown profile label throws NodeProfileError naming node and label', () => {
    const run = (): unknown => profileForNode(node({ 'tessera.dev/device-profile': 'H200' }), profiles);
    expect(run).toThrow(NodeProfileError);
    expect(run).toThrow('node "n1": label tessera.dev/device-profile="H200"');
  });

  test('is pure: the profiles map is read, not changed', () => {
    const before = new Map<string, DeviceProfile>(profiles);
    profileForNode(node({ 'nvidia.com/gpu.product': 'NVIDIA-L4' }), profiles);
    expect(profiles).toEqual(before);
  });
});
