/**
 * The set-up the privileged node-agent tests share: a work directory holding a CA, the two-node
 * sandbox topology (src/sandbox/network/topology.ts) and the agents' local config files; and the
 * tear-down in the one safe order: processes and namespaces (which take their veths, tc filters,
 * ip rules and nft tables with them), then the pinned BPF maps, which outlive namespaces, then
 * the files.
 *
 * Suites that hold their own state use the functions; the smaller ones use `AgentTestbed`, which
 * owns the prefix, the topology and the work directory of one describe block.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTopology, type NodeSpec, type PodSpec, type Topology } from '../../src/sandbox/network/topology.js';
import { AMESH_CLI_MAIN, amesh, writeFileAtomic } from './agents.js';

export const TRUST_DOMAIN = 'cluster.local';

/** node1 and node2 on one uplink segment; a suite with pods on node1 only still needs node2 as node1's uplink peer. */
export const TWO_NODES: readonly NodeSpec[] = [
  { name: 'node1', uplinkIp: '10.250.0.1', podCidr: '10.244.1.0/24' },
  { name: 'node2', uplinkIp: '10.250.0.2', podCidr: '10.244.2.0/24' },
];

/** Where an agent on `node` pins its maps for a run with this prefix (unique per run). */
export function pinRootFor(prefix: string, node: string): string {
  return `/sys/fs/bpf/amesh/v1/${prefix}-${node}`;
}

/** A fresh work directory `<tmp>/<prefix>-[label-]XXXX` with a CA in `ca/`; fails first if the CLI is not built. */
export async function createAgentWorkDir(prefix: string, label?: string): Promise<string> {
  if (!existsSync(AMESH_CLI_MAIN)) throw new Error(`the CLI is not built (${AMESH_CLI_MAIN} is missing): run \`npm run build:ts\` first`);
  const dir = await mkdtemp(join(tmpdir(), label ? `${prefix}-${label}-` : `${prefix}-`));
  await amesh(['ca', 'create', '--dir', join(dir, 'ca'), '--trust-domain', TRUST_DOMAIN]);
  return dir;
}

/** An enrolled (HBONE) workload in namespace demo with service account `sa-<name>`. */
export function meshWorkload(name: string, node: string, ip: string): Record<string, unknown> {
  return { uid: `demo/${name}`, name, namespace: 'demo', serviceAccount: `sa-${name}`, node, addresses: [ip], tunnelProtocol: 'HBONE' };
}

/** The smallest agent topology: enrolled pods a (client) and b (server) on node1; node2 stays empty. */
export const PAIR_IP = { a: '10.244.1.2', b: '10.244.1.3' } as const;
export const PAIR_PODS: readonly PodSpec[] = [
  { name: 'a', node: 'node1', ip: PAIR_IP.a },
  { name: 'b', node: 'node1', ip: PAIR_IP.b },
];
export const PAIR_WORKLOADS: readonly unknown[] = [meshWorkload('a', 'node1', PAIR_IP.a), meshWorkload('b', 'node1', PAIR_IP.b)];

export interface MeshState {
  workloads: readonly unknown[];
  services?: readonly unknown[];
  policies?: readonly unknown[];
}

/** The local config of `node`'s agent: the CA of the work directory, the topology's uplink, `state`. */
export function localConfig(dir: string, topology: Topology, node: string, state: MeshState): Record<string, unknown> {
  return {
    node,
    trustDomain: TRUST_DOMAIN,
    ca: { certFile: join(dir, 'ca', 'ca.pem'), keyFile: join(dir, 'ca', 'ca-key.pem') },
    uplinks: [topology.uplinkName],
    ...state,
  };
}

/** Writes `<dir>/<node>.json` (atomically: a running agent may be watching it) and returns its path. */
export async function writeLocalConfig(dir: string, topology: Topology, node: string, state: MeshState): Promise<string> {
  const file = join(dir, `${node}.json`);
  await writeFileAtomic(file, JSON.stringify(localConfig(dir, topology, node, state), null, 2));
  return file;
}

/**
 * Tears down in order: processes and namespaces, then the pin roots, then the work directory
 * (kept, and named, when `keepDir` — for a failed run).
 */
export async function destroyAgentTestbed(parts: { topology: Topology | undefined; pinRoots: string[]; dir: string; keepDir?: boolean; label?: string }): Promise<void> {
  await parts.topology?.destroy();
  for (const pinRoot of parts.pinRoots) await rm(pinRoot, { recursive: true, force: true });
  if (!parts.dir) return;
  if (parts.keepDir) console.log(`${parts.label ? `${parts.label}: ` : ''}work directory kept for debugging: ${parts.dir}`);
  else await rm(parts.dir, { recursive: true, force: true });
}

/** The two-node topology of one describe block: create it in beforeAll with setUp, remove it in afterAll with tearDown. */
export class AgentTestbed {
  /** `<stem>-<4 hex>`: namespaces, pin roots and the work directory are named after it. */
  readonly prefix: string;
  private workDir = '';
  private created: Topology | undefined;

  constructor(stem: string) {
    this.prefix = `${stem}-${randomBytes(2).toString('hex')}`;
  }

  get dir(): string {
    if (!this.workDir) throw new Error('the work directory was not created (see beforeAll)');
    return this.workDir;
  }

  get topology(): Topology {
    if (!this.created) throw new Error('topology was not created (see beforeAll)');
    return this.created;
  }

  pinRoot(node = 'node1'): string {
    return pinRootFor(this.prefix, node);
  }

  /** The work directory with its CA, then the topology with `pods` on TWO_NODES. */
  async setUp(pods: readonly PodSpec[]): Promise<Topology> {
    this.workDir = await createAgentWorkDir(this.prefix);
    this.created = await createTopology({ prefix: this.prefix, nodes: [...TWO_NODES], pods: [...pods] });
    return this.created;
  }

  /** Writes `node`'s local config into the work directory and returns its path. */
  writeConfig(node: string, state: MeshState): Promise<string> {
    return writeLocalConfig(this.dir, this.topology, node, state);
  }

  async tearDown(opts: { keepDir?: boolean; label?: string } = {}): Promise<void> {
    await destroyAgentTestbed({ topology: this.created, pinRoots: TWO_NODES.map((n) => this.pinRoot(n.name)), dir: this.workDir, ...opts });
  }
}
