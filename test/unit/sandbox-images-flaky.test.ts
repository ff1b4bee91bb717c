import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { containerLaunch, resolveImage } from '../../src/sandbox/images/catalog.js';
import { flakyBody, flakyStatus, parseFlakyOptions, runFlaky } from '../../src/sandbox/images/flaky.js';
import type { HostTools } from '../../src/sandbox/images/host-tools.js';

describe('amesh/flaky: which requests fail', () => {
  it.each([
    // n, failEvery, expected
    [1, 2, 200],
    [2, 2, 503],
    [3, 2, 200],
    [4, 2, 503],
    [1, 1, 503],
    [7, 1, 503],
    [1, 0, 200],
    [1000, 0, 200],
    [3, 3, 503],
    [4, 3, 200],
  ])('request %d with --fail-every %d → %d', (n, failEvery, expected) => expect(flakyStatus(n, failEvery, 503)).toBe(expected));

  it('fails exactly half with the default, and a retry (the next request) always succeeds', () => {
    let failed = 0;
    let retriedOk = 0;
    for (let n = 1; n <= 500; n++) {
      if (flakyStatus(n, 2, 503) === 503) {
        failed++;
        if (flakyStatus(n + 1, 2, 503) === 200) retriedOk++;
      }
    }
    expect(failed).toBe(250);
    expect(retriedOk).toBe(250);
  });

  it('names status, version, hostname and request number in the body', () => {
    expect(flakyBody({ status: 503, version: '2.0.0', hostname: 'flaky-v2-abc', request: 4 })).toBe('amesh/flaky: failing on purpose (503)\nVersion: 2.0.0\nHostname: flaky-v2-abc\nRequest: 4\n');
    expect(flakyBody({ status: 200, version: '2.0.0', hostname: 'h', request: 1 })).toMatch(/^amesh\/flaky: ok\n/);
  });
});

describe('amesh/flaky options', () => {
  it('defaults to port 8080, every 2nd request failing with 503, version 2.0.0', () => {
    expect(parseFlakyOptions({ hostname: 'h' })).toEqual({ port: 8080, failEvery: 2, status: 503, version: '2.0.0', hostname: 'h' });
  });

  it.each([
    [{ failEvery: '-1' }, /--fail-every/],
    [{ failEvery: 'x' }, /--fail-every/],
    [{ failEvery: '1.5' }, /--fail-every/],
    [{ status: '99' }, /--status/],
    [{ status: '600' }, /--status/],
    [{ port: '70000' }, /--port/],
  ])('refuses %j', (o, message) => expect(parseFlakyOptions({ ...o, hostname: 'h' })).toEqual({ error: expect.stringMatching(message) }));
});

describe('amesh/flaky server', () => {
  let server: http.Server | undefined;
  afterEach(() => {
    server?.closeAllConnections();
    server?.close();
    server = undefined;
  });

  it('alternates 200/503 across requests, ignoring /healthz', async () => {
    server = await runFlaky({ port: 0, host: '127.0.0.1', failEvery: 2, status: 503, version: '2.0.0', hostname: 'test-host' });
    const { port } = server.address() as AddressInfo;
    const get = async (path: string): Promise<{ status: number; body: string; request: string | null }> => {
      const r = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: r.status, body: await r.text(), request: r.headers.get('x-flaky-request') };
    };
    const first = await get('/');
    expect(first).toMatchObject({ status: 200, request: '1' });
    expect(first.body).toContain('Hostname: test-host');
    expect(await get('/healthz')).toMatchObject({ status: 200, body: 'ok\n', request: null });
    expect(await get('/any/path')).toMatchObject({ status: 503, request: '2' });
    expect(await get('/healthz')).toMatchObject({ status: 200 });
    expect((await get('/')).status).toBe(200);
    expect((await get('/')).status).toBe(503);
  });

  it('--status picks the failing status; --fail-every 1 fails every request', async () => {
    server = await runFlaky({ port: 0, host: '127.0.0.1', failEvery: 1, status: 500, version: 'bad', hostname: 'h' });
    const { port } = server.address() as AddressInfo;
    for (let i = 0; i < 3; i++) expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(500);
  });
});

describe('amesh/flaky in the sandbox image catalog', () => {
  const host: HostTools = { node: '/usr/bin/node', nodeVersion: '24.11.1', amesh: '/repo/bin/amesh.js' };
  it('runs `amesh image flaky` with the Deployment’s args', () => {
    const plan = resolveImage('amesh/flaky:latest', host);
    if ('error' in plan) throw new Error(plan.error);
    expect(containerLaunch(plan, { args: ['--fail-every', '1'] }, '/c', host).argv).toEqual(['/usr/bin/node', '/repo/bin/amesh.js', 'image', 'flaky', '--fail-every', '1']);
    expect(resolveImage('ghcr.io/amesh/flaky', host)).not.toHaveProperty('error');
  });
});
