/**
 * A server's response to a client that aborted stays on the server's node.
 *
 * When a client resets a tunnelled connection, the destination node's agent resets its own
 * connection to the server pod, and that socket is gone at once. A server still writing its
 * response has segments in flight that reach the node after it: no SYN, no socket, so the
 * capture used to let them pass, and the node forwarded them to the client's address (the agent
 * preserves it as the source), in plaintext, across the uplink. Before the fix, 500 aborts below
 * put 135–182 such packets on node2's uplink with eBPF capture (the old object) and 168 with the
 * nftables rules without the ct-mark rule and output chain; each a data segment of up to 64 KB of
 * the server's plaintext, followed by the client node's reset.
 *
 * Now eBPF remembers the agent's connection from the pod's SYN-ACK (amesh_flows; the stream of
 * data keeps the entry fresh) and nftables from the ct mark its output chain sets on the agent's
 * own connections: a late segment goes to node2's own stack, which resets it.
 *
 * Topology: pod a on node1, pod b on node2 (a server writing 16 KiB chunks for as long as the
 * connection lasts), both enrolled, an agent on each node. Pod a opens ABORTS connections to
 * b:9000, reads the first bytes, waits 0…SPREAD µs and resets; tcpdump on node2's uplink must
 * see no packet to or from port 9000 (the tunnel runs on 15008).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Topology } from '../../src/sandbox/network/topology.js';
import { AgentTestbed, meshWorkload } from '../helpers/agent-testbed.js';
import { AgentProcess, podClientWhileCapturing, startPodServer, type AgentOptions } from '../helpers/agents.js';
import { requireRoot } from '../helpers/privileged.js';

const guard = requireRoot('aborted connections and the response in flight', { tools: ['ip', 'nsenter', 'sysctl', 'tc', 'nft', 'tcpdump'] });

const IP = { a: '10.244.1.2', b: '10.244.2.2' } as const;
const PORT = 9000;
const ABORTS = 500;
const SPREAD_US = 3_000;
const NODES = ['node1', 'node2'] as const;

interface AbortResult {
  ok?: boolean;
  count?: number;
  outcomes?: Record<string, number>;
}

// Root only: requireRoot() fails this file when not root; it skips (printing why) only with
// AMESH_ALLOW_UNPRIVILEGED_SKIP=1, and scripts/test.sh fails if the privileged tier ran nothing.
for (const captureMode of ['ebpf', 'nftables'] as const) {
  describe.skipIf(!guard.run)(`capture (${captureMode}): a response in flight when the client aborts stays on the server's node (privileged)`, () => {
    const bed = new AgentTestbed('aab');
    const agents: AgentProcess[] = [];
    let failed = false;
    const topo = (): Topology => bed.topology;

    beforeAll(async () => {
      await bed.setUp([
        { name: 'a', node: 'node1', ip: IP.a },
        { name: 'b', node: 'node2', ip: IP.b },
      ]);
      await startPodServer(topo(), 'b', 'firehose-server', [PORT], bed.dir);
      const workloads = [meshWorkload('a', 'node1', IP.a), meshWorkload('b', 'node2', IP.b)];
      for (const node of NODES) {
        const configFile = await bed.writeConfig(node, { workloads });
        const options: AgentOptions = { node, configFile, pinRoot: bed.pinRoot(node), logDir: bed.dir, captureMode, drainTimeoutMs: 1_000 };
        const agent = AgentProcess.start(topo(), options);
        agents.push(agent);
        await agent.waitReady(30_000);
      }
    }, 120_000);

    afterAll(async () => {
      if (failed) for (const agent of agents) console.log(agent.logTail(20));
      await bed.tearDown({ keepDir: failed, label: `abort crossing (${captureMode})` });
    });

    it(`${ABORTS} connections reset mid-response: not one packet of the response on the uplink`, async ({ onTestFailed }) => {
      onTestFailed(() => {
        failed = true;
      });
      const run = await podClientWhileCapturing(topo(), { node: 'node2', file: join(bed.dir, 'uplink.pcap'), port: PORT, pod: 'a', program: 'abort-clients', args: ['--host', IP.b, '--port', String(PORT), '--count', String(ABORTS), '--spread-us', String(SPREAD_US)], timeoutMs: 240_000 });
      const result = run.result as AbortResult;
      const { pcap } = run;
      console.log(`abort crossing (${captureMode}): ${JSON.stringify(result)}; ${pcap.tcp.length} packets on port ${PORT} on node2's uplink`);
      // Every connection got the server's first bytes through the tunnel and was then reset by the client.
      expect(result, 'the client read from and aborted every connection').toMatchObject({ ok: true, count: ABORTS, outcomes: { ABORTED: ABORTS } });
      expect(run.packets.slice(0, 10), `plaintext on node2's uplink (${pcap.tcp.length} packets)`).toEqual([]);
    }, 300_000);
  });
}
