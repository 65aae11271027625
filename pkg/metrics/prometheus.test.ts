import { Counts, MetricNameError, familyLines, renderMetrics } from './index.js';

describe('Prometheus text exposition', () => {
  test('HELP, TYPE, samples with sorted, escaped labels; special values', () => {
    expect(familyLines({
      name: 'tessera_x_total', type: 'counter', help: 'Things\nseen \\ counted.',
      samples: [{ value: 3 }, { labels: { z: 'a"b', a: 'line\nbreak\\' }, value: 1.5 }, { labels: { k: 'v' }, value: Infinity }, { labels: { k: 'w' }, value: NaN }],
    })).toEqual([
      '# HELP tessera_x_total Things\\nseen \\\\ counted.',
      '# TYPE tessera_x_total counter',
      'tessera_x_total 3',
      'tessera_x_total{a="line\\nbreak\\\\",z="a\\"b"} 1.5',
      'tessera_x_total{k="v"} +Inf',
      'tessera_x_total{k="w"} NaN',
    ]);
  });

  test('a histogram: _bucket samples with le, then _sum and _count, under one HELP and TYPE', () => {
    expect(familyLines({
      name: 'lat_seconds', type: 'histogram', help: 'h',
      samples: [{ suffix: '_bucket', labels: { le: '0.5' }, value: 1 }, { suffix: '_bucket', labels: { le: '+Inf' }, value: 2 }, { suffix: '_sum', value: 1.75 }, { suffix: '_count', value: 2 }],
    })).toEqual(['# HELP lat_seconds h', '# TYPE lat_seconds histogram', 'lat_seconds_bucket{le="0.5"} 1', 'lat_seconds_bucket{le="+Inf"} 2', 'lat_seconds_sum 1.75', 'lat_seconds_count 2']);
  });

  test('a whole exposition ends with a newline; a family without samples has only its HELP and TYPE', () => {
    expect(renderMetrics([{ name: 'a', type: 'gauge', help: 'h', samples: [] }, { name: 'b', type: 'gauge', help: 'h', samples: [{ value: 0 }] }]))
      .toBe('# HELP a h\n# TYPE a gauge\n# HELP b h\n# TYPE b gauge\nb 0\n');
  });

  test.each([
    [{ name: 'bad-name', type: 'gauge' as const, help: '', samples: [] }, /"bad-name" is not a valid metric name/],
    [{ name: 'ok', type: 'gauge' as const, help: '', samples: [{ labels: { 'bad-label': 'x' }, value: 1 }] }, /"bad-label" is not a valid label name \(metric ok\)/],
    [{ name: 'ok', type: 'gauge' as const, help: '', samples: [{ labels: { __reserved: 'x' }, value: 1 }] }, /"__reserved" is not a valid label name/],
  ])('refuses invalid names: %j', (f, message) => {
    expect(() => familyLines(f)).toThrow(MetricNameError);
    expect(() => familyLines(f)).toThrow(message);
  });

  test('Counts: samples sorted by key, the given keys present at 0', () => {
    const c = new Counts();
    c.add('b');
    c.add('a', 2);
    c.add('b');
    expect(c.samples('type', ['c'])).toEqual([{ labels: { type: 'a' }, value: 2 }, { labels: { type: 'b' }, value: 2 }, { labels: { type: 'c' }, value: 0 }]);
  });
});
