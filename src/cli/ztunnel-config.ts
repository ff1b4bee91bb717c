/**
 * `amesh ztunnel-config workloads|services|policies|certificates|connections [--node N] [-o json|yaml|short]`,
 * like `istioctl ztunnel-config`: reads each node agent's `/config_dump` (admin, 127.0.0.1:15000
 * in the agent's network namespace) through PodHttp. Without --node every running agent is read
 * and the cluster-state kinds merge (workloads by uid); formatting is in
 * inspect/ztunnel-config-format.ts. An agent that cannot be read is named on stderr and the rest
 * are shown; the command fails only when none could be read.
 * Cluster and sandbox are found as inspect/cluster-access.ts says (--kubeconfig, --dir).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { AmeshError } from '../errors/amesh-error.js';
import { openClusterAccess } from './inspect/cluster-access.js';
import { readAgentDump } from './inspect/agent-dump.js';
import { KUBE_OPTIONS_HELP, parseOutput, structuredText, type OutputFormat } from './inspect/output.js';
import { selectAgents } from './inspect/mesh-pods.js';
import type { PodHttp } from './inspect/pod-http.js';
import { formatShort, structured, ZTUNNEL_CONFIG_KINDS, type AgentDump, type ZtunnelConfigKind } from './inspect/ztunnel-config-format.js';

export function registerZtunnelConfig(program: Command): void {
  const root = program.command('ztunnel-config').description("the node agents' view of the mesh, like istioctl ztunnel-config: workloads, services, policies, certificates, connections");
  for (const kind of ZTUNNEL_CONFIG_KINDS) {
    root
      .command(kind)
      .description(`${kind} known to the node agents (all agents merged unless --node)`)
      .option('--node <node>', 'only the agent on this node')
      .option('-n, --namespace <ns>', 'only entries of this namespace')
      .option('-o, --output <format>', 'short (a table), json or yaml (the agents’ own fields)', 'short')
      .option('--kubeconfig <path>', KUBE_OPTIONS_HELP.kubeconfig)
      .option('--dir <dir>', KUBE_OPTIONS_HELP.dir)
      .action(async (o: { node?: string; namespace?: string; output: string; kubeconfig?: string; dir?: string }) => {
        const output = parseOutput(o.output);
        const access = await openClusterAccess(o);
        try {
          process.stdout.write(await ztunnelConfig(access, kind, { output, node: o.node, namespace: o.namespace }));
        } finally {
          access.podHttp.close();
        }
      });
  }
}

export async function ztunnelConfig(
  access: { kubeConfig: KubeConfig; podHttp: PodHttp },
  kind: ZtunnelConfigKind,
  o: { output: OutputFormat; node?: string | undefined; namespace?: string | undefined },
): Promise<string> {
  const agents = await selectAgents(access.kubeConfig, o.node);
  const results = await Promise.allSettled(agents.map((a) => readAgentDump(access.podHttp, a)));
  const dumps: AgentDump[] = [];
  const failures: string[] = [];
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') dumps.push(r.value);
    else failures.push(`${agents[i]?.spec?.nodeName ?? '?'}: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`);
  });
  if (dumps.length === 0) throw new AmeshError('AMESH_COMMAND_FAILED', `no node agent could be read:\n  ${failures.join('\n  ')}`);
  for (const f of failures) console.error(`amesh: skipped the agent on ${f}`);
  dumps.sort((a, b) => a.node.localeCompare(b.node));
  const fo = o.namespace !== undefined ? { namespace: o.namespace } : {};
  if (o.output === 'short') return formatShort(kind, dumps, fo);
  return structuredText(o.output, structured(kind, dumps, fo));
}
