// The node agent in-process without capture (AMESH_CAPTURE_MODE=none, every port 0): a valid
// config change is applied, an invalid one is refused with the bad field named while the last
// good state keeps being served, and readiness/admin answer on their ports.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { NodeAgent } from '../../src/node-agent/app.js';
import { generateCa } from '../../src/identity/pki.js';
import { silentLogger } from '../../src/telemetry/logger.js';

const PORTS_ZERO = Object.fromEntries(
  ['OUTBOUND', 'INBOUND_PLAINTEXT', 'HBONE', 'ADMIN', 'METRICS', 'READINESS'].map((p) => [`AMESH_${p}_PORT`, '0']),
);

describe('node agent local config reload', () => {
  let dir: string | undefined;
  let agent: NodeAgent | undefined;
  afterEach(async () => {
    await agent?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('applies good changes and refuses bad ones, keeping the last good state', async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-reload-'));
    const ca = await generateCa({ trustDomain: 'cluster.local', validityDays: 1 });
    await writeFile(join(dir, 'ca.pem'), ca.certPem);
    await writeFile(join(dir, 'ca-key.pem'), ca.keyPem);
    const file = join(dir, 'mesh.yaml');
    const workload = { uid: 'demo/a', name: 'a', namespace: 'demo', serviceAccount: 'sa-a', node: 'node1', addresses: ['10.244.1.2'], tunnelProtocol: 'HBONE' };
    const doc = { node: 'node1', ca: { certFile: 'ca.pem', keyFile: 'ca-key.pem' }, workloads: [workload] };
    await writeFile(file, stringify(doc));

    const config = readAgentConfig({ AMESH_CAPTURE_MODE: 'none', AMESH_DRAIN_TIMEOUT_MS: '100', ...PORTS_ZERO }, 'node1');
    agent = await NodeAgent.build({ config, localConfigPath: file, logger: silentLogger });
    const ports = await agent.run();
    const ready = await fetch(`http://127.0.0.1:${ports.readiness}/healthz/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, node: 'node1', captureMode: 'none' });

    // A good change: a second workload appears.
    await writeFile(file, stringify({ ...doc, workloads: [workload, { ...workload, uid: 'demo/b', name: 'b', addresses: ['10.244.1.3'] }] }));
    expect(await agent.reload()).toBe(true);
    const dump = async (): Promise<{ workloads: Array<{ uid: string }>; lastConfigError?: string; version: number }> =>
      (await fetch(`http://127.0.0.1:${ports.admin}/config_dump`)).json() as never;
    expect((await dump()).workloads.map((w) => w.uid)).toEqual(['demo/a', 'demo/b']);

    // A bad change: refused, the field named, the last good state still served.
    await writeFile(file, stringify({ ...doc, workloads: [{ ...workload, addresses: ['not-an-ip'] }] }));
    expect(await agent.reload()).toBe(false);
    const after = await dump();
    expect(after.lastConfigError).toContain('workloads[0].addresses[0]: not an IP address');
    expect(after.workloads.map((w) => w.uid)).toEqual(['demo/a', 'demo/b']);

    // Unparseable YAML is refused the same way.
    await writeFile(file, 'node: [unclosed');
    expect(await agent.reload()).toBe(false);
    expect((await dump()).lastConfigError).toContain('not valid YAML');
  });
});
