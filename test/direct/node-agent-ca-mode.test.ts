// The node agent in CA mode (AMESH_CA_ADDRESS set, no `ca` in the local config), in-process with
// capture off and every port 0, against a fake mesh CA on loopback: certificates for local
// workloads come from the CA with ImpersonatedIdentity, readiness and /config_dump show the mode
// and address, a trust bundle change reaches the certificates, and with neither a local CA nor
// AMESH_CA_ADDRESS the agent refuses to start.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { generateCa } from '../../src/identity/pki.js';
import { NodeAgent } from '../../src/node-agent/app.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';
import { startFakeCa, type FakeCa } from '../helpers/fake-ca.js';

const PORTS_ZERO = Object.fromEntries(['OUTBOUND', 'INBOUND_PLAINTEXT', 'HBONE', 'ADMIN', 'METRICS', 'READINESS'].map((p) => [`AMESH_${p}_PORT`, '0']));
const WORKLOAD = { uid: 'demo/a', name: 'a', namespace: 'demo', serviceAccount: 'sa-a', node: 'node1', addresses: ['10.244.1.2'], tunnelProtocol: 'HBONE' };
const URI = 'spiffe://cluster.local/ns/demo/sa/sa-a';

interface Dump {
  ca: { mode: string; address?: string; trustBundle?: { roots: number } };
  certificates: Array<{ identity: string; state: string; serial?: string; rootCerts: unknown[] }>;
}

describe('node agent with the mesh CA', () => {
  let dir: string;
  let ca: FakeCa;
  let agent: NodeAgent | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-ca-mode-'));
    ca = await startFakeCa();
  });
  afterEach(async () => {
    await agent?.close();
    agent = undefined;
    await ca.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('gets workload certificates from the CA and reports the CA in readiness and /config_dump', async () => {
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, stringify({ node: 'node1', workloads: [WORKLOAD] }));
    const config = readAgentConfig(
      {
        AMESH_CAPTURE_MODE: 'none',
        AMESH_DRAIN_TIMEOUT_MS: '100',
        AMESH_CA_ADDRESS: ca.address,
        AMESH_CA_ROOT_CERT_FILE: ca.rootCertFile,
        AMESH_CA_TOKEN_FILE: ca.tokenFile,
        AMESH_TRUST_BUNDLE_POLL_MS: '50',
        AMESH_CLUSTER_ID: 'cluster-1',
        ...PORTS_ZERO,
      },
      'node1',
    );
    agent = await NodeAgent.build({ config, localConfigPath: file, logger: silentLogger });
    const ports = await agent.run();
    const dump = async (): Promise<Dump> => (await fetch(`http://127.0.0.1:${ports.admin}/config_dump`)).json() as Promise<Dump>;

    const cert = await eventually(
      async () => {
        const c = (await dump()).certificates.find((x) => x.identity === URI);
        if (c?.state !== 'Available') throw new Error(`certificate ${c?.state ?? 'absent'}`);
        return c;
      },
      { timeoutMs: 10_000, description: 'workload certificate from the CA' },
    );
    expect(cert.serial).toMatch(/^[0-9a-f]+$/);
    expect(ca.requests[0]).toEqual({ authorization: 'Bearer token-1', clusterId: 'cluster-1', impersonated: URI, validityDuration: 86_400 });
    expect((await dump()).ca).toMatchObject({ mode: 'istio-ca', address: ca.address, trustBundle: { roots: 2 } });

    const ready = await fetch(`http://127.0.0.1:${ports.readiness}/healthz/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, ca: { mode: 'istio-ca', address: ca.address }, certificates: { available: 1, total: 1 } });

    // A root rotation lands in the ConfigMap: the certificate's roots follow.
    const next = await generateCa({ trustDomain: 'cluster.local', validityDays: 1 });
    await writeFile(ca.rootCertFile, ca.servingCaPem + ca.root.certPem + next.certPem);
    await eventually(
      async () => {
        const c = (await dump()).certificates.find((x) => x.identity === URI);
        expect(c?.rootCerts).toHaveLength(3);
      },
      { timeoutMs: 10_000, description: 'trust bundle applied' },
    );
  });

  it('refuses to start with neither a local CA nor AMESH_CA_ADDRESS', async () => {
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, stringify({ node: 'node1', workloads: [WORKLOAD] }));
    const config = readAgentConfig({ AMESH_CAPTURE_MODE: 'none', ...PORTS_ZERO }, 'node1');
    await expect(NodeAgent.build({ config, localConfigPath: file, logger: silentLogger })).rejects.toMatchObject({
      code: 'AMESH_CONFIG_INVALID',
      message: expect.stringContaining('AMESH_CA_ADDRESS'),
    });
  });
});
