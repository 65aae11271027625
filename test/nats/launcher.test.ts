import { createConnection } from 'node:net';
import { NatsServer, NatsServerNotFoundError, NatsServerStartError, findNatsServer } from './launcher.js';

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

describe('nats-server launcher', () => {
  test('starts a server that speaks NATS with the configured max_payload, and stops it by PID', async () => {
    const srv = await NatsServer.start({ maxPayload: 8 * 1024 * 1024, monitoring: true });
    try {
      expect(await canConnect(srv.port)).toBe(true);
      const varz = await srv.monitor('varz');
      expect(varz.max_payload).toBe(8 * 1024 * 1024);
      expect(varz.max_pending).toBe(64 * 1024 * 1024);
      expect(() => process.kill(srv.pid, 0)).not.toThrow();
    } finally {
      await srv.stop();
    }
    expect(() => process.kill(srv.pid, 0)).toThrow();
    expect(await canConnect(srv.port)).toBe(false);
  });

  test('a missing binary fails with a message that says how to install it', () => {
    expect(() => findNatsServer('/nonexistent-dir', [])).toThrow(NatsServerNotFoundError);
    expect(() => findNatsServer('/nonexistent-dir', [])).toThrow(/apt-get install -y nats-server/);
  });

  test('max_payload above max_pending is refused before starting', async () => {
    await expect(NatsServer.start({ maxPayload: 16 * 1024 * 1024, maxPending: 8 * 1024 * 1024 })).rejects.toThrow(NatsServerStartError);
  });
});
