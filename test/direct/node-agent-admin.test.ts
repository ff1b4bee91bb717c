// The node agent's admin and metrics ports in-process (local config, capture none, every port 0):
//   - /config_dump in ztunnel's shape (workloads, services, policies, certificates) with amesh's
//     extra keys kept;
//   - /debug/denials lists a refused tunnel with the deciding policy;
//   - /logging shows the components (access among them), changes one (access:off really drops
//     the access log while other output goes on) or all, and refuses bad input with a 400 naming it;
//   - /metrics carries the internals (HBONE pool/server, live connections, certificate expiry,
//     enrolled pods) next to the process metrics.
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { HbonePool } from '../../src/hbone/pool.js';
import { NodeAgent, type ListeningPorts } from '../../src/node-agent/app.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { echoServer, listen } from '../helpers/hbone.js';
import { meshCaDir } from '../helpers/mesh-ca-dir.js';
import { workload } from '../helpers/pki.js';

const PORTS_ZERO = Object.fromEntries(['OUTBOUND', 'INBOUND_PLAINTEXT', 'HBONE', 'ADMIN', 'METRICS', 'READINESS'].map((p) => [`AMESH_${p}_PORT`, '0']));
const ALICE = workload('demo', 'alice');
const BOB = workload('demo', 'bob');
const SERVER_URI = 'spiffe://cluster.local/ns/demo/sa/server';

interface LogLine {
  component?: string;
  msg: string;
  policy?: string;
  'src.identity'?: string;
}

describe('node agent admin: /config_dump, /debug/denials, /logging, internals on /metrics', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('serves the ztunnel-shaped dump, the denials, per-component levels and the internals', async () => {
    const { dir, meshCa } = await meshCaDir('amesh-admin-', cleanups);
    const echo = echoServer();
    const echoPort = await listen(echo);
    cleanups.push(() => new Promise<void>((resolve) => echo.close(() => resolve())));

    // 127.0.0.1 stands for the server pod's IP (the HBONE listener's local address).
    const doc = {
      node: 'node1',
      ca: { certFile: 'ca.pem', keyFile: 'ca-key.pem' },
      workloads: [
        { uid: 'Kubernetes//Pod/demo/server', name: 'server', namespace: 'demo', serviceAccount: 'server', node: 'node1', addresses: ['127.0.0.1'], tunnelProtocol: 'HBONE', canonicalName: 'server', canonicalRevision: 'v2', services: { 'demo/server.demo.svc.cluster.local': { ports: [{ servicePort: 80, targetPort: echoPort }] } } },
        { uid: 'Kubernetes//Pod/demo/alice', name: 'alice', namespace: 'demo', serviceAccount: 'alice', node: 'node2', addresses: ['10.244.2.1'], tunnelProtocol: 'NONE' },
      ],
      services: [{ name: 'server', namespace: 'demo', hostname: 'server.demo.svc.cluster.local', addresses: ['10.96.0.10'], ports: [{ servicePort: 80, targetPort: echoPort }] }],
      policies: [
        {
          name: 'allow-alice',
          namespace: 'demo',
          scope: 'NAMESPACE',
          action: 'ALLOW',
          rules: [{ clauses: [{ matches: [{ principals: [{ exact: 'cluster.local/ns/demo/sa/alice' }] }] }] }],
        },
      ],
    };
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, stringify(doc));

    const lines: LogLine[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as LogLine);
          done();
        },
      }),
    );
    const config = readAgentConfig({ AMESH_CAPTURE_MODE: 'none', AMESH_DRAIN_TIMEOUT_MS: '100', ...PORTS_ZERO }, 'node1');
    const agent = await NodeAgent.build({ config, localConfigPath: file, logger });
    cleanups.push(() => agent.close());
    const ports: ListeningPorts = await agent.run();
    const admin = (path: string): Promise<Response> => fetch(`http://127.0.0.1:${ports.admin}${path}`);
    const getJson = async <T>(path: string): Promise<T> => (await admin(path)).json() as Promise<T>;

    // --- /config_dump: ztunnel's four keys first, its field names and forms; amesh's extras kept.
    const dump = await eventually(
      async () => {
        const d = await getJson<Record<string, unknown> & { certificates: Array<{ identity: string; state: string }> }>('/config_dump');
        const c = d.certificates.find((x) => x.identity === SERVER_URI);
        if (c?.state !== 'Available') throw new Error(`server certificate ${c?.state ?? 'absent'}`);
        return d;
      },
      { timeoutMs: 10_000, description: 'the server workload’s certificate is available' },
    );
    expect(Object.keys(dump).slice(0, 4)).toEqual(['workloads', 'services', 'policies', 'certificates']);
    expect(dump).toMatchObject({ node: 'node1', stateSource: 'local-file', ca: { mode: 'local' }, capture: { mode: 'none' }, connections: { live: 0 } });
    expect(dump.workloads).toEqual([
      expect.objectContaining({ uid: 'Kubernetes//Pod/demo/alice', workloadIps: ['10.244.2.1'], protocol: 'TCP', node: 'node2', status: 'Healthy' }),
      expect.objectContaining({
        uid: 'Kubernetes//Pod/demo/server',
        workloadIps: ['127.0.0.1'],
        protocol: 'HBONE',
        serviceAccount: 'server',
        trustDomain: 'cluster.local',
        canonicalName: 'server',
        canonicalRevision: 'v2',
        workloadType: 'deployment',
        services: ['demo/server.demo.svc.cluster.local'],
      }),
    ]);
    expect(dump.services).toEqual([
      expect.objectContaining({
        hostname: 'server.demo.svc.cluster.local',
        vips: ['/10.96.0.10'],
        ports: { '80': echoPort },
        endpoints: { 'Kubernetes//Pod/demo/server': { workloadUid: 'Kubernetes//Pod/demo/server', service: 'demo/server.demo.svc.cluster.local', port: { '80': echoPort }, status: 'Healthy' } },
      }),
    ]);
    expect(dump.policies).toEqual([{ name: 'allow-alice', namespace: 'demo', scope: 'Namespace', action: 'Allow', rules: [[[{ principals: [{ Exact: 'cluster.local/ns/demo/sa/alice' }] }]]], dryRun: false }]);
    const cert = (dump.certificates as unknown as Array<{ identity: string; certChain: Array<{ pem: string; serialNumber: string; expirationTime: string }>; rootCerts: unknown[] }>).find((c) => c.identity === SERVER_URI);
    expect(cert?.certChain.length).toBeGreaterThan(0);
    expect(Buffer.from(cert?.certChain[0]?.pem ?? '', 'base64').toString('utf8')).toContain('-----BEGIN CERTIFICATE-----');
    expect(cert?.certChain[0]?.serialNumber).toMatch(/^\d+$/);
    expect(cert?.rootCerts).toHaveLength(1);

    // --- /logging: the components with their levels; the access log is one of them.
    const levels = await getJson<{ level: string; components: Record<string, string> }>('/logging');
    expect(levels.level).toBe('info');
    expect(levels.components).toMatchObject({ access: 'info', proxy: 'info', certificates: 'info' });
    for (const [query, named] of [
      ['nosuch:debug', /unknown log component "nosuch"/],
      ['access:loud', /unknown log level "loud" for component "access"/],
      ['loud', /unknown log level "loud"/],
    ] as const) {
      const res = await admin(`/logging?level=${encodeURIComponent(query)}`);
      expect(res.status, query).toBe(400);
      const body = (await res.json()) as { error: string; validLevels: string[]; components: string[] };
      expect(body.error).toMatch(named);
      expect(body.validLevels).toEqual(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'off']);
      expect(body.components).toContain('access');
    }
    expect((await getJson<{ components: Record<string, string> }>('/logging')).components.access, 'a refused change changes nothing').toBe('info');

    // --- Tunnels: alice is allowed, bob is refused by demo/allow-alice.
    const pool = new HbonePool({ certificates: { secureContext: (id) => meshCa.context(id) }, logger: silentLogger });
    cleanups.push(() => pool.close());
    const tunnel = (source: typeof ALICE): Promise<Duplex> => pool.connect({ sourceIdentity: source, expectedIdentities: [SERVER_URI], nextHop: { host: '127.0.0.1', port: ports.hbone }, authority: `127.0.0.1:${echoPort}`, headers: {} });
    const fromAlice = await tunnel(ALICE);
    fromAlice.on('error', () => undefined);
    fromAlice.write('ping');
    const [echoed] = (await once(fromAlice, 'data')) as [Buffer];
    expect(echoed.toString()).toBe('ping');

    // access:off: the refusal is recorded (the sync point) but no access line is written.
    const off = await admin('/logging?level=access:off');
    expect(off.status).toBe(200);
    expect(((await off.json()) as { components: Record<string, string> }).components).toMatchObject({ access: 'off', proxy: 'info' });
    const denials = (): Promise<{ capacity: number; total: number; denials: Array<Record<string, unknown>> }> => getJson('/debug/denials');
    await expect(tunnel(BOB)).rejects.toThrow(/401/);
    await eventually(async () => expect((await denials()).total).toBe(1), { timeoutMs: 5000, description: 'the first refusal recorded' });
    const accessLines = (): LogLine[] => lines.filter((l) => l.component === 'access' && l['src.identity'] === 'spiffe://cluster.local/ns/demo/sa/bob');
    expect(accessLines()).toEqual([]);

    // access:info again: the next refusal is logged, with the policy name.
    expect((await admin('/logging?level=access:info')).status).toBe(200);
    await expect(tunnel(BOB)).rejects.toThrow(/401/);
    await eventually(async () => expect((await denials()).total).toBe(2), { timeoutMs: 5000, description: 'the second refusal recorded' });
    expect(accessLines()).toHaveLength(1);
    expect(accessLines()[0]?.policy).toBe('demo/allow-alice');

    // --- /debug/denials: newest first, with the deciding policy and the peer identity.
    const d = await denials();
    expect(d.capacity).toBe(100);
    expect(d.denials).toHaveLength(2);
    expect(d.denials[0]).toMatchObject({ direction: 'inbound', sourceIdentity: 'spiffe://cluster.local/ns/demo/sa/bob', policy: 'demo/allow-alice', destinationWorkload: 'Kubernetes//Pod/demo/server' });
    expect(Date.parse(String(d.denials[0]?.time))).toBeGreaterThanOrEqual(Date.parse(String(d.denials[1]?.time)));

    // --- A bare level reaches every component (the default too): warn silences the reload's info line.
    const all = await getJson<{ level: string; components: Record<string, string>; overrides: Record<string, string> }>('/logging?level=warn');
    expect(all.level).toBe('warn');
    expect(Object.values(all.components).every((l) => l === 'warn')).toBe(true);
    expect(all.overrides).toEqual({});
    const applied = (): number => lines.filter((l) => l.msg === 'mesh state applied').length;
    const before = applied();
    await writeFile(file, stringify({ ...doc, policies: [] }));
    expect(await agent.reload()).toBe(true);
    expect(applied()).toBe(before);
    await getJson('/logging?level=info');
    await writeFile(file, stringify(doc));
    expect(await agent.reload()).toBe(true);
    expect(applied()).toBe(before + 1);

    // --- /metrics: internals next to the process metrics, while alice's tunnel is open.
    const metrics = await (await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).text();
    const sample = (name: string, labels = ''): number | undefined => {
      const line = metrics.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
    };
    expect(sample('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample('amesh_hbone_server_sessions')).toBeGreaterThanOrEqual(1);
    expect(sample('amesh_hbone_server_streams')).toBe(1);
    expect(sample('amesh_hbone_server_streams_accepted_total')).toBeGreaterThanOrEqual(1);
    expect(sample('amesh_hbone_server_streams_refused_total')).toBe(2);
    expect(sample('amesh_inbound_connections_live')).toBe(1);
    expect(sample('amesh_hbone_pool_connections')).toBe(0);
    expect(sample('amesh_enrolled_pods')).toBe(1);
    expect(sample('amesh_certificates', '{state="Available"}')).toBe(1);
    const expiry = sample('amesh_certificate_expiry_seconds', `{identity="${SERVER_URI}"}`);
    expect(expiry).toBeGreaterThan(0);
    expect(expiry).toBeLessThanOrEqual(config.certTtlSeconds);
    // Local-file mode, no capture: the xDS and BPF families carry no samples.
    expect(metrics).toContain('# TYPE amesh_bpf_redirects_total counter');
    expect(metrics).not.toMatch(/^amesh_bpf_redirects_total\{/m);
    expect(metrics).not.toMatch(/^amesh_xds_connected /m);
    fromAlice.destroy();
  });

  it('answers 404 on /debug/denials for a proxy without a denial log and on unknown paths', async () => {
    const { AdminServers } = await import('../../src/node-agent/admin.js');
    const servers = new AdminServers({ ready: () => ({ ready: true }), configDump: () => ({}), quit: () => undefined, logger: silentLogger });
    cleanups.push(() => servers.close());
    const p = await servers.start({ readiness: 0, admin: 0, metrics: 0 });
    expect((await fetch(`http://127.0.0.1:${p.admin}/debug/denials`)).status).toBe(404);
    const res = await fetch(`http://127.0.0.1:${p.admin}/nope`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toContain('/logging');
    // The shared silent logger is never turned up.
    const refused = await fetch(`http://127.0.0.1:${p.admin}/logging?level=debug`);
    expect(refused.status).toBe(400);
    expect(silentLogger.level).toBe('silent');
  });
});

