import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { isSandboxServer } from '../../src/cli/inspect/cluster-access.js';
import { CHILD_SCRIPT, childArgv, parseChildOutput, podUrl } from '../../src/cli/inspect/pod-http.js';

const pod = (ip?: string): V1Pod => ({ metadata: { namespace: 'amesh-system', name: 'amesh-node-abc' }, status: ip ? { podIP: ip } : {} });

describe('podUrl', () => {
  it('targets the pod loopback by default and its address with host: pod', () => {
    expect(podUrl(pod('10.1.0.5'), 15000, '/config_dump')).toBe('http://127.0.0.1:15000/config_dump');
    expect(podUrl(pod('10.1.0.5'), 15020, '/metrics', 'pod')).toBe('http://10.1.0.5:15020/metrics');
    expect(podUrl(pod('fd00::5'), 15020, '/metrics', 'pod')).toBe('http://[fd00::5]:15020/metrics');
  });
  it('rejects bad ports and paths, and a pod without an address, naming the pod', () => {
    expect(() => podUrl(pod(), 0, '/x')).toThrow('amesh-system/amesh-node-abc');
    expect(() => podUrl(pod(), 70000, '/x')).toThrow(/not a TCP port/);
    expect(() => podUrl(pod(), 80, 'x')).toThrow(/must start with/);
    expect(() => podUrl(pod(), 80, '/x', 'pod')).toThrow(/amesh-system\/amesh-node-abc has no address/);
  });
});

describe('child process protocol', () => {
  it('runs the script after the namespace prefix', () => {
    expect(childArgv(['ip', 'netns', 'exec', 'ns1'], '/usr/bin/node')).toEqual(['ip', 'netns', 'exec', 'ns1', '/usr/bin/node', '-e', CHILD_SCRIPT]);
  });
  it('parses a header line then the raw body (which may hold newlines)', () => {
    expect(parseChildOutput(Buffer.from('{"status":200}\n{"a":\n1}\n'))).toEqual({ status: 200, body: '{"a":\n1}\n' });
    expect(parseChildOutput(Buffer.from('{"status":404}\n'))).toEqual({ status: 404, body: '' });
  });
  it('reports errors and garbage as errors', () => {
    expect(parseChildOutput(Buffer.from('{"error":"ECONNREFUSED connect"}\n'))).toEqual({ error: 'ECONNREFUSED connect' });
    expect(parseChildOutput(Buffer.alloc(0))).toEqual({ error: 'no output' });
    expect(parseChildOutput(Buffer.from('Cannot open network namespace'))).toHaveProperty('error');
    expect(parseChildOutput(Buffer.from('nonsense\nmore'))).toHaveProperty('error');
    expect(parseChildOutput(Buffer.from('{"x":1}\n'))).toHaveProperty('error');
  });
});

describe('isSandboxServer', () => {
  it('matches the sandbox API port on loopback only', () => {
    expect(isSandboxServer('https://127.0.0.1:40123', { apiPort: 40123 })).toBe(true);
    expect(isSandboxServer('https://127.0.0.1:40124', { apiPort: 40123 })).toBe(false);
    expect(isSandboxServer('https://10.0.0.1:40123', { apiPort: 40123 })).toBe(false);
    expect(isSandboxServer('http://127.0.0.1:40123', { apiPort: 40123 })).toBe(false);
    expect(isSandboxServer(undefined, { apiPort: 40123 })).toBe(false);
    expect(isSandboxServer('::nonsense', { apiPort: 40123 })).toBe(false);
  });
});
