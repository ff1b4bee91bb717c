import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { parseHttpEchoArgs, runHttpEcho } from '../../src/sandbox/images/http-echo.js';

describe('built-in http-echo image', () => {
  const servers: http.Server[] = [];
  afterAll(() => servers.forEach((s) => s.close()));

  async function start(argv: string[]): Promise<number> {
    const options = parseHttpEchoArgs(argv);
    if ('error' in options) throw new Error(options.error);
    const server = await runHttpEcho(options);
    servers.push(server);
    return (server.address() as AddressInfo).port;
  }

  it('answers every path with the text and a newline, and /health with JSON', async () => {
    const port = await start(['-text=hello from v1', '-listen=127.0.0.1:0']);
    for (const path of ['/', '/a/b?c=d']) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('hello from v1\n');
    }
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(await health.json()).toEqual({ status: 'ok' });
  });

  it('answers with -status-code', async () => {
    const port = await start(['-text', 'down', '-listen=127.0.0.1:0', '-status-code=503']);
    const res = await fetch(`http://127.0.0.1:${port}/`);
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('down\n');
  });
});
