/**
 * HTTP GET to a port of a pod, from the machine the CLI runs on — how `amesh ztunnel-config`,
 * `proxy-status`, `diagnose` and the dashboard read admin and debug endpoints that listen on a
 * pod's localhost (the node agent's admin on 127.0.0.1:15000) or on its pod address.
 *
 * Two transports behind one interface:
 * - Sandbox (openPodHttp got a sandbox state directory): the request runs *inside the pod's
 *   network namespace*, found from the kubelet's container record (podExecTarget: `ip netns exec`
 *   for pod networks, `nsenter --net` for host-network pods such as the node agent). A short
 *   child `node` process (this same binary, process.execPath) does the GET and writes one JSON
 *   header line then the raw body to stdout. Needs root, like `amesh sandbox exec`.
 * - Real cluster: the API server's pod port-forward (@kubernetes/client-node PortForward): a
 *   listener on 127.0.0.1:0 per (pod, port), each accepted connection forwarded, like
 *   `kubectl port-forward`. Port-forward reaches the pod's localhost only, so `host: 'pod'` is the
 *   same as '127.0.0.1' there. NOT exercised by this repository's tests (the sandbox's API server
 *   has no port-forward); it follows client-node's documented example.
 *
 * Invariants: every request is bounded in time (timeoutMs, default 5 s; the sandbox child is
 * killed shortly after) and in size (maxBytes, default 32 MiB; larger bodies fail, never
 * truncate silently). Failures are AmeshError AMESH_COMMAND_FAILED naming pod and port.
 * Only GET: the callers read state, they never change it.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import { AmeshError } from '../../errors/amesh-error.js';

export interface PodHttpResponse {
  status: number;
  body: string;
}

export interface PodHttpOptions {
  timeoutMs?: number;
  /** Where in the pod's network namespace: its loopback (default) or its pod address (status.podIP). */
  host?: '127.0.0.1' | 'pod';
  /** Largest body accepted (default DEFAULT_MAX_BYTES). */
  maxBytes?: number;
}

export interface PodHttp {
  get(pod: V1Pod, port: number, path: string, o?: PodHttpOptions): Promise<PodHttpResponse>;
  /** Closes port-forward listeners (no-op in the sandbox). */
  close(): void;
}

export const DEFAULT_TIMEOUT_MS = 5_000;
export const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;
/** Node start-up inside the namespace is not part of the request's own timeout. */
const CHILD_START_GRACE_MS = 3_000;

// ---- pure pieces ----------------------------------------------------------------------------

export function podRef(pod: V1Pod): string {
  return `${pod.metadata?.namespace ?? '?'}/${pod.metadata?.name ?? '?'}`;
}

/** The URL the request goes to inside the pod's network namespace. */
export function podUrl(pod: V1Pod, port: number, path: string, host: '127.0.0.1' | 'pod' = '127.0.0.1'): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new AmeshError('AMESH_CONFIG_INVALID', `port ${port} of pod ${podRef(pod)} is not a TCP port`);
  if (!path.startsWith('/')) throw new AmeshError('AMESH_CONFIG_INVALID', `path ${JSON.stringify(path)} must start with /`);
  let address = '127.0.0.1';
  if (host === 'pod') {
    const ip = pod.status?.podIP;
    if (!ip) throw new AmeshError('AMESH_COMMAND_FAILED', `pod ${podRef(pod)} has no address yet`, { hint: 'is it Running? kubectl get pod -o wide' });
    address = net.isIPv6(ip) ? `[${ip}]` : ip;
  }
  return `http://${address}:${port}${path}`;
}

/** What the child process is told (in its environment, AMESH_POD_HTTP). */
export interface ChildRequest {
  url: string;
  timeoutMs: number;
  maxBytes: number;
}

/**
 * The child's program: GET one URL, print `{"status":N}\n` + body, or `{"error":"…"}\n`.
 * Plain JavaScript for `node -e`; no imports from the repository (it runs from any directory).
 */
export const CHILD_SCRIPT = `
const http = require('node:http');
const r = JSON.parse(process.env.AMESH_POD_HTTP);
const fail = (m) => { process.stdout.write(JSON.stringify({ error: m }) + '\\n', () => process.exit(0)); };
const req = http.get(r.url, { timeout: r.timeoutMs, headers: { accept: 'application/json, text/plain, */*' } }, (res) => {
  const chunks = []; let size = 0;
  res.on('data', (c) => { size += c.length; if (size > r.maxBytes) { res.destroy(); fail('response body larger than ' + r.maxBytes + ' bytes'); } else chunks.push(c); });
  res.on('end', () => { process.stdout.write(JSON.stringify({ status: res.statusCode }) + '\\n'); process.stdout.write(Buffer.concat(chunks), () => process.exit(0)); });
  res.on('error', (e) => fail(e.message));
});
req.on('timeout', () => { req.destroy(); fail('no response within ' + r.timeoutMs + ' ms'); });
req.on('error', (e) => fail(e.code ? e.code + ' ' + e.message : e.message));
`;

/** The argv that runs CHILD_SCRIPT inside the namespace the prefix enters. */
export function childArgv(prefix: readonly string[], execPath: string): string[] {
  return [...prefix, execPath, '-e', CHILD_SCRIPT];
}

/** Parses the child's stdout: a JSON header line, then the body. */
export function parseChildOutput(stdout: Buffer): { status: number; body: string } | { error: string } {
  const newline = stdout.indexOf(0x0a);
  if (newline < 0) return { error: stdout.length ? `unexpected output: ${stdout.subarray(0, 200).toString()}` : 'no output' };
  let head: unknown;
  try {
    head = JSON.parse(stdout.subarray(0, newline).toString('utf8'));
  } catch {
    return { error: `unexpected output: ${stdout.subarray(0, Math.min(newline, 200)).toString()}` };
  }
  const h = head as { status?: unknown; error?: unknown };
  if (typeof h.error === 'string') return { error: h.error };
  if (typeof h.status === 'number') return { status: h.status, body: stdout.subarray(newline + 1).toString('utf8') };
  return { error: 'unexpected header from the request process' };
}

function failure(pod: V1Pod, port: number, path: string, reason: string, hint?: string, cause?: unknown): AmeshError {
  return new AmeshError('AMESH_COMMAND_FAILED', `GET ${path} on pod ${podRef(pod)} port ${port}: ${reason}`, {
    ...(cause !== undefined ? { cause } : {}),
    hint: hint ?? `is the pod Running and does it listen on ${port}? kubectl get pod -n ${pod.metadata?.namespace} ${pod.metadata?.name}`,
  });
}

// ---- sandbox: a child process in the pod's network namespace ---------------------------------

export interface SandboxPodHttpDeps {
  /** Kubelet state directory (sandboxPaths(dir).kubelet). */
  kubeletDir: string;
  /** Resolves the namespace prefix (default: podExecTarget). */
  execTarget?: (pod: V1Pod) => Promise<{ prefix: string[] }>;
  execPath?: string;
}

export class SandboxPodHttp implements PodHttp {
  constructor(private readonly deps: SandboxPodHttpDeps) {}

  async get(pod: V1Pod, port: number, path: string, o: PodHttpOptions = {}): Promise<PodHttpResponse> {
    const url = podUrl(pod, port, path, o.host);
    const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const maxBytes = o.maxBytes ?? DEFAULT_MAX_BYTES;
    const resolve =
      this.deps.execTarget ??
      (async (p: V1Pod) => {
        const { podExecTarget } = await import('../../sandbox/pod-access.js');
        return podExecTarget({ stateDir: this.deps.kubeletDir, pod: p });
      });
    let prefix: string[];
    try {
      prefix = (await resolve(pod)).prefix;
    } catch (err) {
      throw failure(pod, port, path, `cannot enter the pod's network namespace: ${(err as Error).message}`, (err as AmeshError).hint, err);
    }
    const [program, ...args] = childArgv(prefix, this.deps.execPath ?? process.execPath);
    const request: ChildRequest = { url, timeoutMs, maxBytes };
    const out = await new Promise<{ stdout: Buffer; stderr: string; code: number | null; error?: Error; killed: boolean }>((done) => {
      const child = spawn(program ?? 'false', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', AMESH_POD_HTTP: JSON.stringify(request) } });
      const chunks: Buffer[] = [];
      let size = 0;
      let stderr = '';
      let killed = false;
      const kill = (): void => {
        killed = true;
        child.kill('SIGKILL');
      };
      const timer = setTimeout(kill, timeoutMs + CHILD_START_GRACE_MS);
      child.stdout.on('data', (d: Buffer) => {
        size += d.length;
        // Header line + body; anything past the cap is the child misbehaving.
        if (size > maxBytes + 4096) kill();
        else chunks.push(d);
      });
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 4096) stderr += d.toString();
      });
      child.once('error', (error) => {
        clearTimeout(timer);
        done({ stdout: Buffer.alloc(0), stderr, code: null, error, killed });
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        done({ stdout: Buffer.concat(chunks), stderr, code, killed });
      });
    });
    if (out.error) throw failure(pod, port, path, `cannot run ${program}: ${out.error.message}`, 'the sandbox transport needs root (like `amesh sandbox exec`)', out.error);
    if (out.killed) throw failure(pod, port, path, `no answer within ${timeoutMs + CHILD_START_GRACE_MS} ms`);
    const parsed = parseChildOutput(out.stdout);
    if ('error' in parsed) {
      const detail = out.code !== 0 && out.stderr.trim() ? `${parsed.error}; ${out.stderr.trim().split('\n').slice(-3).join(' ')}` : parsed.error;
      throw failure(pod, port, path, detail);
    }
    return parsed;
  }

  close(): void {}
}

// ---- real cluster: API server port-forward (not exercised here) ------------------------------

export class PortForwardPodHttp implements PodHttp {
  private readonly listeners = new Map<string, Promise<{ server: net.Server; port: number }>>();

  constructor(private readonly kubeConfig: KubeConfig) {}

  private listener(pod: V1Pod, port: number): Promise<{ server: net.Server; port: number }> {
    const namespace = pod.metadata?.namespace ?? 'default';
    const name = pod.metadata?.name ?? '';
    const key = `${namespace}/${name}/${pod.metadata?.uid ?? ''}:${port}`;
    let pending = this.listeners.get(key);
    if (!pending) {
      pending = (async () => {
        const { PortForward } = await import('@kubernetes/client-node');
        const forward = new PortForward(this.kubeConfig);
        const server = net.createServer((socket) => {
          socket.on('error', () => socket.destroy());
          forward.portForward(namespace, name, [port], socket, null, socket).catch(() => socket.destroy());
        });
        server.listen({ host: '127.0.0.1', port: 0 });
        await new Promise<void>((ok, ko) => {
          server.once('listening', ok);
          server.once('error', ko);
        });
        server.unref();
        return { server, port: (server.address() as AddressInfo).port };
      })();
      this.listeners.set(key, pending);
      pending.catch(() => this.listeners.delete(key));
    }
    return pending;
  }

  async get(pod: V1Pod, port: number, path: string, o: PodHttpOptions = {}): Promise<PodHttpResponse> {
    podUrl(pod, port, path); // validates port and path
    const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const maxBytes = o.maxBytes ?? DEFAULT_MAX_BYTES;
    const local = await this.listener(pod, port);
    return new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: local.port, path, timeout: timeoutMs, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) {
            res.destroy();
            reject(failure(pod, port, path, `response body larger than ${maxBytes} bytes`));
          } else chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (err) => reject(failure(pod, port, path, err.message, undefined, err)));
      });
      req.on('timeout', () => {
        req.destroy();
        reject(failure(pod, port, path, `no response within ${timeoutMs} ms (through the API server's port-forward)`));
      });
      req.on('error', (err) => reject(failure(pod, port, path, `${err.message} (through the API server's port-forward)`, 'may your user create pods/portforward? kubectl auth can-i create pods/portforward', err)));
    });
  }

  close(): void {
    for (const pending of this.listeners.values()) pending.then((l) => l.server.close(), () => undefined);
    this.listeners.clear();
  }
}

/**
 * Sandbox (a state directory given, as cluster-access.ts resolves it): the request runs inside
 * the pod's network namespace. Real cluster: client-node PortForward (not exercised here).
 */
export async function openPodHttp(o: { sandboxDir?: string; kubeConfig: KubeConfig }): Promise<PodHttp> {
  if (o.sandboxDir !== undefined) {
    const { sandboxPaths, readState } = await import('../../sandbox/state.js');
    if (!(await readState(o.sandboxDir))) throw new AmeshError('AMESH_SANDBOX_NOT_RUNNING', `no sandbox in ${o.sandboxDir}`, { hint: 'start one with `amesh sandbox up`, or pass --dir' });
    return new SandboxPodHttp({ kubeletDir: sandboxPaths(o.sandboxDir).kubelet });
  }
  return new PortForwardPodHttp(o.kubeConfig);
}
