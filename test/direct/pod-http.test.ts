// The sandbox transport's child process against loopback servers: no namespace prefix (the
// privileged sandbox-diagnose suite covers `ip netns exec` / nsenter), same program otherwise.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SandboxPodHttp } from '../../src/cli/inspect/pod-http.js';
import { AmeshError } from '../../src/errors/amesh-error.js';

const pod: V1Pod = { metadata: { namespace: 'amesh-system', name: 'amesh-node-x', uid: 'u1' }, status: { podIP: '127.0.0.1' } };

describe('SandboxPodHttp (child process, loopback)', () => {
  let server: http.Server;
  let port: number;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/json') res.end(JSON.stringify({ hello: 'world', lines: 'a\nb' }));
      else if (req.url === '/big') res.end('x'.repeat(200_000));
      else if (req.url === '/slow') setTimeout(() => res.end('late'), 3_000).unref();
      else {
        res.statusCode = 404;
        res.end('nope');
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });
  const http0 = new SandboxPodHttp({ kubeletDir: '/nonexistent', execTarget: async () => ({ prefix: [] }) });

  it('returns status and body', async () => {
    await expect(http0.get(pod, port, '/json')).resolves.toEqual({ status: 200, body: JSON.stringify({ hello: 'world', lines: 'a\nb' }) });
    await expect(http0.get(pod, port, '/missing', { host: 'pod' })).resolves.toEqual({ status: 404, body: 'nope' });
  });
  it('fails on a body over the cap, a timeout and a closed port, naming pod and port', async () => {
    await expect(http0.get(pod, port, '/big', { maxBytes: 1000 })).rejects.toThrow(/amesh-system\/amesh-node-x port \d+: response body larger than 1000 bytes/);
    const started = Date.now();
    await expect(http0.get(pod, port, '/slow', { timeoutMs: 300 })).rejects.toThrow(/no response within 300 ms/);
    expect(Date.now() - started).toBeLessThan(2_900);
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as AddressInfo).port;
    closed.close();
    const err = await http0.get(pod, closedPort, '/x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AmeshError);
    expect((err as AmeshError).code).toBe('AMESH_COMMAND_FAILED');
    expect((err as AmeshError).message).toMatch(new RegExp(`pod amesh-system/amesh-node-x port ${closedPort}: ECONNREFUSED`));
  });
  it('names the pod when the namespace cannot be entered', async () => {
    const broken = new SandboxPodHttp({
      kubeletDir: '/nonexistent',
      execTarget: async () => {
        throw new AmeshError('AMESH_SANDBOX_FAILED', 'the kubelet has no running container');
      },
    });
    await expect(broken.get(pod, 15000, '/config_dump')).rejects.toThrow(/amesh-node-x port 15000: cannot enter the pod's network namespace/);
  });
});
