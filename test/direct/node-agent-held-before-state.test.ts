// A freshly bound agent (nobody to take over from) listens before its first complete xDS state.
// An HBONE connection that arrives in that window must not be rejected for a pod the agent does
// not know yet ("no certificate for <pod ip>" — a reset for the peer): it is held, unread, and
// served once the state is there (docs/upgrade.md "A freshly bound agent holds connections").
// In-process, capture off, ports 0: the controller's ADS server (behind a front door that stays
// "down" until the tunnel is pending), a fake mesh CA, a real HBONE client.
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { AdsServer } from '../../src/controller/xds/ads-server.js';
import { ResourceStore } from '../../src/controller/xds/resource-store.js';
import { HbonePool } from '../../src/hbone/pool.js';
import { NodeAgent } from '../../src/node-agent/app.js';
import type { Workload } from '../../src/node-agent/state/types.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { ADDRESS_TYPE_URL, encodeWorkloadAddress } from '../../src/xds/codec.js';
import { serveAdsOverTls } from '../helpers/ads-tls.js';
import { startFakeCa } from '../helpers/fake-ca.js';
import { echoServer, listen } from '../helpers/hbone.js';
import { createTestCa, workload } from '../helpers/pki.js';

const PORTS_ZERO = Object.fromEntries(['OUTBOUND', 'INBOUND_PLAINTEXT', 'HBONE', 'ADMIN', 'METRICS', 'READINESS'].map((p) => [`AMESH_${p}_PORT`, '0']));
const ALICE = workload('demo', 'alice');
const server: Workload = { uid: 'Kubernetes//Pod/demo/server', name: 'server', namespace: 'demo', addresses: ['127.0.0.1'], tunnelProtocol: 'HBONE', serviceAccount: 'server', node: 'node1', services: {}, status: 'HEALTHY' } as Workload;

describe('node agent bound fresh, before its first state', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  });

  it('holds an HBONE connection until the state names the pod, then serves it (no reject)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'amesh-held-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const meshCa = await createTestCa();
    const ca = await startFakeCa({ root: meshCa.ca });
    cleanups.push(() => ca.close());
    const store = new ResourceStore();
    store.upsert(ADDRESS_TYPE_URL, server.uid, encodeWorkloadAddress(server));
    const ads = new AdsServer({ store, log: silentLogger, debounceMs: 5, maxDelayMs: 20, authenticate: async () => ({ ok: true, caller: 'amesh-system/amesh-node' }) });
    const served = await serveAdsOverTls(ads);
    cleanups.push(() => served.close());
    const grpcPort = served.port;
    // The controller is unreachable until we open the door.
    let up = false;
    const door = net.createServer((socket) => {
      socket.on('error', () => undefined);
      if (!up) return socket.resetAndDestroy();
      const upstream = net.connect(grpcPort, '127.0.0.1');
      upstream.on('error', () => socket.destroy());
      socket.on('close', () => upstream.destroy());
      upstream.on('close', () => socket.destroy());
      socket.pipe(upstream).pipe(socket);
    });
    const doorPort = await listen(door);
    cleanups.push(() => void door.close());
    const rootFile = join(dir, 'root-cert.pem');
    await writeFile(rootFile, ca.servingCaPem + meshCa.ca.certPem + served.caCertPem);
    const echo = echoServer();
    const echoPort = await listen(echo);
    cleanups.push(() => void echo.close());

    const config = readAgentConfig({
      AMESH_CAPTURE_MODE: 'none',
      AMESH_DRAIN_TIMEOUT_MS: '100',
      AMESH_CA_ADDRESS: ca.address,
      AMESH_CA_ROOT_CERT_FILE: rootFile,
      AMESH_CA_TOKEN_FILE: ca.tokenFile,
      AMESH_XDS_ADDRESS: `127.0.0.1:${doorPort}`,
      AMESH_XDS_SERVER_NAME: 'amesh-controller.amesh-system.svc',
      NODE_NAME: 'node1',
      ...PORTS_ZERO,
    });
    const agent = await NodeAgent.build({ config, logger: silentLogger });
    cleanups.push(() => agent.close());
    const ports = await agent.run();
    expect((await fetch(`http://127.0.0.1:${ports.readiness}/healthz/ready`)).status).toBe(503);

    // A tunnel to the server pod, dialled while the agent has no state yet.
    const pool = new HbonePool({ certificates: { secureContext: (id) => meshCa.context(id) }, logger: silentLogger });
    cleanups.push(() => pool.close());
    let settled = false;
    const pending = pool.connect({ sourceIdentity: ALICE, expectedIdentities: ['spiffe://cluster.local/ns/demo/sa/server'], nextHop: { host: '127.0.0.1', port: ports.hbone }, authority: `127.0.0.1:${echoPort}`, headers: {} });
    pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((resolve) => setTimeout(resolve, 800));
    // Without the hold it would have been rejected by now (unknown pod → no certificate).
    expect(settled).toBe(false);

    up = true;
    const tunnel: Duplex = await pending;
    tunnel.on('error', () => undefined);
    const got = once(tunnel, 'data');
    tunnel.write('held, not reset');
    const [chunk] = (await got) as [Buffer];
    expect(chunk.toString()).toBe('held, not reset');
    tunnel.destroy();
  }, 30_000);
});
