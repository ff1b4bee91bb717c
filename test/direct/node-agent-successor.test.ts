// SIGTERM with a successor (docs/upgrade.md "SIGTERM: wait for a successor, then drain"): an
// agent told to stop keeps serving its listeners and the hand-off socket, answers readiness 503
// ("waitingForSuccessor") so a probe of a new pod cannot be satisfied by it, and drains as soon
// as a new agent takes over — instead of leaving the port unserved. Without a successor it
// drains alone once the wait (at most half the drain timeout) is over. In a pod
// (AMESH_AFTER_HANDOFF=wait) a handed-over agent drains but does not ask to quit.
// In-process agents without capture, private abstract hand-off socket, ports 0; no root.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { generateCa } from '../../src/identity/pki.js';
import { NodeAgent } from '../../src/node-agent/app.js';
import { silentLogger } from '../../src/telemetry/logger.js';

const PORTS_ZERO = Object.fromEntries(['OUTBOUND', 'INBOUND_PLAINTEXT', 'HBONE', 'ADMIN', 'METRICS', 'READINESS'].map((p) => [`AMESH_${p}_PORT`, '0']));

function ready(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz/ready', agent: false, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

describe('node agent SIGTERM waits for a successor', () => {
  let dir: string | undefined;
  const agents: NodeAgent[] = [];
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const setup = async (env: Record<string, string>) => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-successor-'));
    const ca = await generateCa({ trustDomain: 'cluster.local', validityDays: 1 });
    await writeFile(join(dir, 'ca.pem'), ca.certPem);
    await writeFile(join(dir, 'ca-key.pem'), ca.keyPem);
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, stringify({ node: 'node1', ca: { certFile: 'ca.pem', keyFile: 'ca-key.pem' }, workloads: [] }));
    const socket = `@amesh-test-successor-${randomBytes(4).toString('hex')}`;
    const config = readAgentConfig({ AMESH_CAPTURE_MODE: 'none', AMESH_HANDOFF_SOCKET: socket, ...PORTS_ZERO, ...env }, 'node1');
    const start = async (): Promise<{ agent: NodeAgent; readiness: number }> => {
      const agent = await NodeAgent.build({ config, localConfigPath: file, logger: silentLogger });
      agents.push(agent);
      const ports = await agent.run();
      return { agent, readiness: ports.readiness };
    };
    return { start };
  };

  it('serves on with readiness 503 after SIGTERM, and drains for the new agent that takes over', async () => {
    const { start } = await setup({ AMESH_DRAIN_TIMEOUT_MS: '20000', AMESH_SUCCESSOR_WAIT_MS: '5000', AMESH_AFTER_HANDOFF: 'exit' });
    const old = await start();
    expect((await ready(old.readiness)).status).toBe(200);
    const t0 = Date.now();
    let closedAt = 0;
    const closing = old.agent.close().then(() => (closedAt = Date.now()));
    // Still accepting, but not ready: a probe meant for a new pod must not pass on the old agent.
    const during = await ready(old.readiness);
    expect(during.status).toBe(503);
    expect(during.body).toMatchObject({ ready: false, waitingForSuccessor: true });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(closedAt).toBe(0);
    // The successor takes over the very same readiness port (and the others) from the stopping agent.
    const next = await start();
    expect(next.readiness).toBe(old.readiness);
    await closing;
    agents.splice(agents.indexOf(old.agent), 1);
    // It drained as soon as the successor took over, not at the end of the 5 s wait.
    expect(closedAt - t0).toBeLessThan(4000);
    const after = await ready(next.readiness);
    expect(after.status).toBe(200);
    expect(after.body.pid).toBe(process.pid);
    expect(after.body.waitingForSuccessor).toBeUndefined();
  }, 30_000);

  it('without a successor drains alone after the wait, capped at half the drain timeout', async () => {
    const { start } = await setup({ AMESH_DRAIN_TIMEOUT_MS: '1200', AMESH_SUCCESSOR_WAIT_MS: '5000' });
    const old = await start();
    const t0 = Date.now();
    await old.agent.close();
    agents.splice(agents.indexOf(old.agent), 1);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(550); // waited min(5000, 1200 / 2) = 600 ms (timer slack)
    expect(took).toBeLessThan(3000);
    await expect(ready(old.readiness)).rejects.toThrow(/ECONNREFUSED/);
  }, 30_000);

  it('in a pod (AMESH_AFTER_HANDOFF=wait) the handed-over agent drains but does not quit', async () => {
    const { start } = await setup({ AMESH_DRAIN_TIMEOUT_MS: '2000', AMESH_AFTER_HANDOFF: 'wait' });
    const old = await start();
    let quit: string | undefined;
    void old.agent.quitSignal().then((why) => (quit = why));
    const next = await start();
    expect(next.readiness).toBe(old.readiness);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(quit).toBeUndefined();
    expect((await ready(next.readiness)).status).toBe(200);
    // Its SIGTERM then finds the drain done and ends at once.
    const t0 = Date.now();
    await old.agent.close();
    agents.splice(agents.indexOf(old.agent), 1);
    expect(Date.now() - t0).toBeLessThan(1500);
  }, 30_000);
});
