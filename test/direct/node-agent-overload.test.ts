/**
 * The node agent's per-workload connection cap (issue #12 part 4), one agent in-process on
 * loopback, capture off, AMESH_MAX_CONNECTIONS_PER_WORKLOAD=2:
 *
 *   client pods a (127.0.0.11), b (127.0.0.12) ──► Service VIP 127.0.0.1:<outbound port>
 *     └─ same node, in-process admission ──► server pod 127.0.0.2 (echo)
 *
 * - a's third concurrent connection is reset at once (outbound cap of the source pod);
 * - with a's two connections open, b's first is refused by the server pod's inbound cap;
 * - each refusal is counted (reason workload_connections, by direction) and logged once, naming
 *   the pod, the cap and AMESH_MAX_CONNECTIONS_PER_WORKLOAD;
 * - connections under the cap carry bytes, and once one closes new ones are admitted again.
 *
 * A second agent (AMESH_HBONE_MAX_PENDING_CONNECTS=1) tunnels to a pod on another node whose HBONE
 * port accepts TCP and never answers TLS: the first connection waits in the pool, the second is
 * reset at once, counted (pending_streams) and logged.
 */
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { NodeAgent } from '../../src/node-agent/app.js';
import { overloadOf, type ProxyContext } from '../../src/node-agent/proxy/proxy-context.js';
import type { Workload } from '../../src/node-agent/state/types.js';
import { eventually } from '../helpers/eventually.js';
import { echoServer, listen } from '../helpers/hbone.js';
import { meshCaDir } from '../helpers/mesh-ca-dir.js';

const PORTS_ZERO = Object.fromEntries(['OUTBOUND', 'INBOUND_PLAINTEXT', 'HBONE', 'ADMIN', 'METRICS', 'READINESS'].map((p) => [`AMESH_${p}_PORT`, '0']));
const SERVICE_HOST = 'server.shop.svc.cluster.local';
const pod = (name: string, namespace: string, ip: string): Workload => ({ uid: `Kubernetes//Pod/${namespace}/${name}`, name, namespace, addresses: [ip], tunnelProtocol: 'HBONE', serviceAccount: name, node: 'node1', services: {} }) as Workload;
const A = pod('a', 'demo', '127.0.0.11');
const B = pod('b', 'demo', '127.0.0.12');
const SERVER = pod('server', 'shop', '127.0.0.2');

interface LogLine {
  msg: string;
  [key: string]: unknown;
}

const cleanups: Array<() => Promise<void> | void> = [];
const lines: LogLine[] = [];
let agent: NodeAgent;
let outboundPort: number;

beforeAll(async () => {
  const { dir } = await meshCaDir('amesh-overload-', cleanups);
  const server = echoServer();
  const serverPort = await listen(server, '127.0.0.2');
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const mesh = (servicePort: number): string =>
    stringify({
      node: 'node1',
      ca: { certFile: 'ca.pem', keyFile: 'ca-key.pem' },
      workloads: [A, B, { ...SERVER, services: servicePort ? { [`shop/${SERVICE_HOST}`]: { ports: [{ servicePort, targetPort: serverPort }] } } : {} }],
      services: servicePort ? [{ name: 'server', namespace: 'shop', hostname: SERVICE_HOST, addresses: ['127.0.0.1'], ports: [{ servicePort, targetPort: serverPort }] }] : [],
      policies: [],
    });
  const file = join(dir, 'node1.yaml');
  await writeFile(file, mesh(0));
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  agent = await NodeAgent.build({
    config: readAgentConfig({ AMESH_CAPTURE_MODE: 'none', AMESH_DRAIN_TIMEOUT_MS: '100', AMESH_MAX_CONNECTIONS_PER_WORKLOAD: '2', ...PORTS_ZERO }, 'node1'),
    localConfigPath: file,
    logger: pino({ level: 'info' }, sink),
  });
  cleanups.push(() => agent.close());
  const ports = await agent.run();
  outboundPort = ports.outbound;
  // The Service's VIP:port is the agent's outbound listener: a connection to it is what capture hands the agent.
  await writeFile(file, mesh(outboundPort));
  expect(await agent.reload()).toBe(true);
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A connection from `from` through the agent; resolves once it carried a byte round trip, or with the way it was refused. */
async function dial(from: Workload, port = outboundPort): Promise<{ socket: net.Socket; echoed: boolean }> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: from.addresses[0] });
  socket.on('error', () => undefined);
  // events.once rejects on 'error'; a reset (even before 'connect' is seen) is a refusal here.
  const on = (event: string): Promise<boolean> => new Promise((resolve) => socket.once(event, () => resolve(event !== 'close')));
  const closed = on('close');
  if (!(await Promise.race([on('connect'), closed]))) return { socket, echoed: false };
  socket.write('ping');
  const echoed = await Promise.race([on('data'), closed]);
  return { socket, echoed };
}

function overloadLines(direction: string): LogLine[] {
  return lines.filter((l) => l.reason === 'workload_connections' && l.direction === direction && typeof l.msg === 'string' && l.msg.startsWith('overload:'));
}

const totals = (): ReturnType<ReturnType<typeof overloadOf>['log']['totals']> => overloadOf((agent as unknown as { proxyContext: ProxyContext }).proxyContext).log.totals();

describe('per-workload connection cap', () => {
  it('resets a source pod’s connection over the cap, refuses a destination pod’s over the cap, counts and logs both, and admits again below it', async () => {
    const a1 = await dial(A);
    const a2 = await dial(A);
    expect([a1.echoed, a2.echoed]).toEqual([true, true]);

    // Outbound: a is at its cap.
    const started = Date.now();
    const a3 = await dial(A);
    expect(a3.echoed).toBe(false);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(overloadLines('outbound')).toHaveLength(1);
    expect(overloadLines('outbound')[0]).toMatchObject({ workload: A.uid, limit: 2, setting: 'AMESH_MAX_CONNECTIONS_PER_WORKLOAD' });

    // Inbound: the server pod holds a's two connections; b (under its own cap) is refused there.
    const b1 = await dial(B);
    expect(b1.echoed).toBe(false);
    expect(overloadLines('inbound')).toHaveLength(1);
    expect(overloadLines('inbound')[0]).toMatchObject({ workload: SERVER.uid, limit: 2 });
    expect(totals()).toEqual(
      expect.arrayContaining([
        { reason: 'workload_connections', direction: 'outbound', count: 1 },
        { reason: 'workload_connections', direction: 'inbound', count: 1 },
      ]),
    );

    // A second refusal within the interval is counted, not logged again.
    const a4 = await dial(A);
    expect(a4.echoed).toBe(false);
    expect(overloadLines('outbound')).toHaveLength(1);
    expect(totals()).toContainEqual({ reason: 'workload_connections', direction: 'outbound', count: 2 });
    // … and served on the agent's /metrics.
    const metrics = await (agent as unknown as { admin: { registry: { metrics(): Promise<string> } } }).admin.registry.metrics();
    expect(metrics).toContain('amesh_overload_rejections_total{reason="workload_connections",direction="outbound"} 2');
    expect(metrics).toContain('amesh_overload_rejections_total{reason="workload_connections",direction="inbound"} 1');

    // Below the cap again: b gets through once one of a's connections closed.
    a1.socket.end();
    await eventually(
      async () => {
        const b = await dial(B);
        b.socket.destroy();
        expect(b.echoed).toBe(true);
      },
      { timeoutMs: 5000, description: 'b admitted once a connection closed' },
    );
    a2.socket.destroy();
  });
});

describe('pending CONNECT cap', () => {
  it('resets a connection whose destination already has the maximum of CONNECTs waiting, counts and logs it', async () => {
    const { dir } = await meshCaDir('amesh-overload-pending-', cleanups);
    // The remote node's HBONE port: accepts, never answers the TLS handshake.
    const held: net.Socket[] = [];
    const blackhole = net.createServer((s) => {
      s.on('error', () => undefined);
      held.push(s);
    });
    const hbonePort = await listen(blackhole, '127.0.0.3');
    cleanups.push(() => {
      for (const s of held) s.destroy();
      return new Promise<void>((resolve) => blackhole.close(() => resolve()));
    });
    const remote: Workload = { ...pod('remote', 'shop', '127.0.0.3'), node: 'node2' };
    const mesh = (servicePort: number): string =>
      stringify({
        node: 'node1',
        ca: { certFile: 'ca.pem', keyFile: 'ca-key.pem' },
        workloads: [A, { ...remote, services: servicePort ? { 'shop/remote.shop.svc.cluster.local': { ports: [{ servicePort, targetPort: 80 }] } } : {} }],
        services: servicePort ? [{ name: 'remote', namespace: 'shop', hostname: 'remote.shop.svc.cluster.local', addresses: ['127.0.0.1'], ports: [{ servicePort, targetPort: 80 }] }] : [],
        policies: [],
      });
    const file = join(dir, 'node1.yaml');
    await writeFile(file, mesh(0));
    const seen: LogLine[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) seen.push(JSON.parse(line) as LogLine);
        done();
      },
    });
    const second = await NodeAgent.build({
      config: readAgentConfig({ AMESH_CAPTURE_MODE: 'none', AMESH_DRAIN_TIMEOUT_MS: '100', ...PORTS_ZERO, AMESH_HBONE_PORT: String(hbonePort), AMESH_HBONE_MAX_PENDING_CONNECTS: '1' }, 'node1'),
      localConfigPath: file,
      logger: pino({ level: 'info' }, sink),
    });
    cleanups.push(() => second.close());
    const ports = await second.run();
    await writeFile(file, mesh(ports.outbound));
    expect(await second.reload()).toBe(true);
    const ctx = (second as unknown as { proxyContext: ProxyContext }).proxyContext;
    const waiting = net.connect({ host: '127.0.0.1', port: ports.outbound, localAddress: A.addresses[0] });
    waiting.on('error', () => undefined);
    cleanups.push(() => void waiting.destroy());
    await eventually(() => expect([...ctx.pool.pending().values()]).toEqual([1]), { timeoutMs: 5000, description: 'the first CONNECT waits in the pool' });
    const refused = await dial(A, ports.outbound);
    expect(refused.echoed).toBe(false);
    expect(overloadOf(ctx).log.totals()).toContainEqual({ reason: 'pending_streams', direction: 'outbound', count: 1 });
    const line = seen.find((l) => l.reason === 'pending_streams');
    expect(line).toMatchObject({ direction: 'outbound', limit: 1, setting: 'AMESH_HBONE_MAX_PENDING_CONNECTS' });
    expect(String(line?.workload)).toContain(A.uid);
  });
});
