/**
 * pkg/metrics: what every long-running Tessera process exposes: Prometheus text rendered from
 * metric families (prometheus.ts, pure) and the /metrics + /healthz HTTP server (http.ts).
 */
export { Counts, MetricNameError, familyLines, renderMetrics } from './prometheus.js';
export type { MetricFamily, MetricType, Sample } from './prometheus.js';
export { serveHttp } from './http.js';
