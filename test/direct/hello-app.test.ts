import { afterAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import type http from 'node:http';
import { runHelloApp } from '../../src/sandbox/images/hello-app.js';

describe('built-in hello-app image', () => {
  let server: http.Server | undefined;
  afterAll(() => server?.close());

  it('answers every path with the real image’s three lines', async () => {
    server = await runHelloApp({ port: 0, version: '2.0.0', hostname: 'backend-v2-abc' });
    const { port } = server.address() as AddressInfo;
    for (const path of ['/', '/anything/else?x=1']) {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('Hello, world!\nVersion: 2.0.0\nHostname: backend-v2-abc\n');
    }
  });
});
