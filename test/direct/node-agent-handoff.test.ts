// The listener hand-off (docs/upgrade.md) between node agents in one process, without capture
// (AMESH_CAPTURE_MODE=none, a private abstract hand-off socket, every port 0): a second agent
// takes over the first one's listening sockets (the same ports, no new bind), the first one is
// told to quit, a third takes over from the second; readiness requests made in a loop through
// all of it never fail. Needs the native addon (SCM_RIGHTS); no root.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { readAgentConfig } from '../../src/config/agent-config.js';
import { generateCa } from '../../src/identity/pki.js';
import { loadNativeBinding } from '../../src/native/index.js';
import { NodeAgent, type ListeningPorts } from '../../src/node-agent/app.js';
import { requestHandoff } from '../../src/node-agent/handoff/handoff.js';
import { createLogger, silentLogger } from '../../src/telemetry/logger.js';

const PORTS_ZERO = Object.fromEntries(['OUTBOUND', 'INBOUND_PLAINTEXT', 'HBONE', 'ADMIN', 'METRICS', 'READINESS'].map((p) => [`AMESH_${p}_PORT`, '0']));

/** GET on a fresh connection (agent: false), so every request needs a new accept. */
function get(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
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

describe('node agent listener hand-off', () => {
  let dir: string | undefined;
  const agents: NodeAgent[] = [];
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a new agent takes over the listening sockets and the old one quits; new accepts never fail', async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-handoff-'));
    const ca = await generateCa({ trustDomain: 'cluster.local', validityDays: 1 });
    await writeFile(join(dir, 'ca.pem'), ca.certPem);
    await writeFile(join(dir, 'ca-key.pem'), ca.keyPem);
    const file = join(dir, 'mesh.yaml');
    await writeFile(file, stringify({ node: 'node1', ca: { certFile: 'ca.pem', keyFile: 'ca-key.pem' }, workloads: [] }));
    const socket = `@amesh-test-handoff-${randomBytes(4).toString('hex')}`;
    const config = readAgentConfig({ AMESH_CAPTURE_MODE: 'none', AMESH_DRAIN_TIMEOUT_MS: '1000', AMESH_HANDOFF_SOCKET: socket, ...PORTS_ZERO }, 'node1');
    const logger = process.env.AMESH_TEST_LOG ? createLogger('info', 'handoff-test') : silentLogger;

    // Nobody answers yet: the first agent binds fresh.
    expect(await requestHandoff(loadNativeBinding(), socket, silentLogger)).toBeUndefined();
    const first = await NodeAgent.build({ config, localConfigPath: file, logger });
    agents.push(first);
    const ports = await first.run();
    const firstQuit = first.quitSignal();

    // Readiness on fresh connections every 5 ms for the whole test.
    let stop = false;
    const results = { ok: 0, failed: [] as string[] };
    const loop = (async () => {
      while (!stop) {
        try {
          const r = await get(ports.readiness);
          if (r.status === 200) results.ok++;
          else results.failed.push(`status ${r.status}: ${JSON.stringify(r.body)}`);
        } catch (err) {
          results.failed.push((err as Error).message);
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();

    const takeOver = async (old: NodeAgent, oldQuit: Promise<string>): Promise<{ agent: NodeAgent; ports: ListeningPorts }> => {
      const next = await NodeAgent.build({ config, localConfigPath: file, logger });
      agents.push(next);
      const nextPorts = await next.run();
      // The old agent was told to go (the CLI then drains and exits).
      expect(await oldQuit).toMatch(/^hand-off to pid \d+$/);
      await old.close();
      agents.splice(agents.indexOf(old), 1);
      return { agent: next, ports: nextPorts };
    };

    const second = await takeOver(first, firstQuit);
    // The very same ports (sockets inherited, nothing re-bound)
    expect(second.ports).toEqual(ports);
    const secondQuit = second.agent.quitSignal();
    const third = await takeOver(second.agent, secondQuit);
    expect(third.ports).toEqual(ports);
    await new Promise((resolve) => setTimeout(resolve, 200));
    stop = true;
    await loop;
    expect(results.failed).toEqual([]);
    expect(results.ok).toBeGreaterThan(10);
    // The newest agent serves the hand-off socket in turn.
    const offer = await requestHandoff(loadNativeBinding(), socket, silentLogger);
    expect(offer).toBeDefined();
    expect(offer?.count).toBe(7); // outbound, inbound-plaintext, hbone (IPv4), readiness, admin, metrics, handoff
    offer?.close();
  }, 30_000);
});
