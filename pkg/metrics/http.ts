import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The HTTP face of a Tessera process, for the chart's probes and scrapes: /metrics (Prometheus
 * text, prometheus.ts) and /healthz (200 while `healthy()`, else 503) on `port` (0: any free port);
 * anything else is 404. Resolves with the bound port.
 */
export async function serveHttp(port: number, metrics: () => string, healthy: () => boolean): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(metrics());
    } else if (req.url === '/healthz') {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'unhealthy\n');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, resolve);
  });
  return { server, port: (server.address() as AddressInfo).port };
}
