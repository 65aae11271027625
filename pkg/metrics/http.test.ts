import { serveHttp } from './index.js';

test('/metrics serves the text, /healthz follows healthy() (200 / 503), anything else is 404', async () => {
  let healthy = false;
  let n = 0;
  const { server, port } = await serveHttp(0, () => `tessera_scrapes ${++n}\n`, () => healthy);
  try {
    const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`);
    const m = await get('/metrics');
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toBe('text/plain; version=0.0.4');
    expect(await m.text()).toBe('tessera_scrapes 1\n');
    expect(await (await get('/metrics')).text()).toBe('tessera_scrapes 2\n'); // rendered per scrape
    expect((await get('/healthz')).status).toBe(503);
    healthy = true;
    const h = await get('/healthz');
    expect([h.status, await h.text()]).toEqual([200, 'ok\n']);
    expect((await get('/nope')).status).toBe(404);
  } finally {
    server.close();
  }
});
