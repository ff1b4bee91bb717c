/**
 * The agent's `amesh_bpf_redirects_total{reason}` comes from the eBPF program's pinned per-CPU
 * `amesh_reasons` map: a real `amesh node-agent` (eBPF capture) in a sandbox topology
 * (plus an empty node2 for the uplink) with two enrolled pods; traffic from a to b moves REDIRECT_OUTBOUND up on the agent's /metrics
 * (15020 in the node namespace), every reason of the BPF contract is a label, and the figures
 * agree with the capture counters in /config_dump. In nftables mode the family has no samples.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REASON_NAMES } from '../../src/node-agent/capture/bpf-contract.js';
import { AgentTestbed, PAIR_IP as IP, PAIR_PODS, PAIR_WORKLOADS } from '../helpers/agent-testbed.js';
import { AgentProcess, runPodClient, startPodServer, type AgentOptions } from '../helpers/agents.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';

const guard = requireRoot('agent bpf metrics', { tools: ['ip', 'nsenter', 'tc', 'nft', 'curl'] });

const ECHO_PORT = 9001;

// Skipped only when not root AND AMESH_ALLOW_UNPRIVILEGED_SKIP=1 (the reason is printed); otherwise
// requireRoot fails the file (test/helpers/privileged.ts), so CI as root always runs it.
describe.skipIf(!guard.run)('agent /metrics: BPF per-reason counters from the pinned map (privileged)', () => {
  const bed = new AgentTestbed('amb');
  const topo = () => bed.topology;
  // One pin root for both runs: the nftables agent removes the eBPF agent's leftovers (filters, maps) at start.
  const pinRoot = bed.pinRoot('node1');
  let configFile = '';

  beforeAll(async () => {
    // node2 stays empty: it only gives node1 the uplink veth the agent attaches to.
    await bed.setUp(PAIR_PODS);
    await startPodServer(topo(), 'b', 'echo-server', [ECHO_PORT], bed.dir);
    configFile = await bed.writeConfig('node1', { workloads: PAIR_WORKLOADS });
  }, 120_000);

  afterAll(() => bed.tearDown());

  const startAgent = async (captureMode: 'ebpf' | 'nftables'): Promise<AgentProcess> => {
    const options: AgentOptions = { node: 'node1', configFile, pinRoot, logDir: bed.dir, captureMode, drainTimeoutMs: 2_000 };
    const agent = AgentProcess.start(topo(), options);
    const ready = await agent.waitReady(30_000);
    expect(ready).toMatchObject({ ready: true, captureMode });
    return agent;
  };

  const metrics = async (): Promise<string> => {
    const r = await topo().exec('node1', ['curl', '-s', '-S', '--max-time', '5', 'http://127.0.0.1:15020/metrics'], { timeoutMs: 10_000 });
    return r.stdout;
  };
  const reasons = (text: string): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const m of text.matchAll(/^amesh_bpf_redirects_total\{reason="([A-Z_]+)"\} (\d+)$/gm)) out[m[1] as string] = Number(m[2]);
    return out;
  };

  it('counts redirects per reason from the map, in step with the capture status', async () => {
    const agent = await startAgent('ebpf');
    try {
      // The first state is applied (pods enrolled in the map) before traffic counts as captured.
      await eventually(async () => expect((await agent.configDump()).capture).toMatchObject({ mode: 'ebpf', enrolled: 2 }), { timeoutMs: 15_000, description: 'both pods enrolled' });
      const before = reasons(await metrics());
      expect(Object.keys(before).sort()).toEqual(Object.values(REASON_NAMES).sort());

      const result = await runPodClient(topo(), 'a', 'client', ['--host', IP.b, '--port', String(ECHO_PORT), '--send-bytes', '4096', '--expect', 'echo', '--timeout-ms', '10000'], 20_000);
      expect(result, agent.logTail()).toMatchObject({ ok: true });

      const after = await eventually(
        async () => {
          const r = reasons(await metrics());
          expect(r.REDIRECT_OUTBOUND).toBeGreaterThan(before.REDIRECT_OUTBOUND ?? 0);
          return r;
        },
        { timeoutMs: 5_000, description: 'REDIRECT_OUTBOUND moves with the connection' },
      );
      // Counters never go backwards, and /config_dump's capture counters read the same map.
      for (const [reason, n] of Object.entries(before)) expect(after[reason], reason).toBeGreaterThanOrEqual(n);
      const counters = ((await agent.configDump()).capture as { counters?: Record<string, number> }).counters ?? {};
      expect(counters.REDIRECT_OUTBOUND).toBeGreaterThanOrEqual(after.REDIRECT_OUTBOUND ?? 0);
    } finally {
      await agent.stop(15_000);
    }
  }, 90_000);

  it('has no BPF samples with nftables capture', async () => {
    const agent = await startAgent('nftables');
    try {
      const text = await metrics();
      expect(text).toContain('# TYPE amesh_bpf_redirects_total counter');
      expect(reasons(text)).toEqual({});
      expect(text).toMatch(/^amesh_enrolled_pods 2$/m);
    } finally {
      await agent.stop(15_000);
    }
  }, 60_000);
});
