/**
 * The static ("local") configuration file of the node agent: YAML or JSON in the proto3 JSON
 * shape the controller will push over xDS (DESIGN §6), plus this node's name, trust domain,
 * optionally the CA that signs local workload certificates (local mode; without it the agent
 * needs AMESH_CA_ADDRESS) and optional uplinks.
 *
 * Validation reports the path of the first bad fields (`workloads[1].addresses[0]: not an IP
 * address`) so an operator can fix the file; the agent keeps its last good state meanwhile.
 * The per-resource schemas are exported: the xDS state source checks every resource it
 * receives with the same rules (src/node-agent/xds/xds-state-source.ts).
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { AmeshError } from '../errors/amesh-error.js';
import type { MeshSnapshot, Workload } from '../node-agent/state/types.js';

const ip = z.string().refine((s) => isIP(s) !== 0, { message: 'not an IP address' });
const port = z.number().int().min(1).max(65535);
const name = z.string().min(1);

const portSchema = z
  .object({
    servicePort: port,
    targetPort: z.number().int().min(0).max(65535).default(0),
    appProtocol: z.enum(['UNKNOWN', 'HTTP11', 'HTTP2', 'GRPC', 'TCP', 'TLS']).optional(),
  })
  .strict();

/** istio.workload.GatewayAddress: exactly one of hostname / address (a waypoint or network gateway). */
const gatewayAddressSchema = z
  .object({
    hostname: z.object({ namespace: z.string(), hostname: name }).strict().optional(),
    address: z.object({ network: z.string().optional(), address: ip }).strict().optional(),
    hboneMtlsPort: port,
  })
  .strict()
  .refine((g) => (g.hostname === undefined) !== (g.address === undefined), { message: 'exactly one of hostname and address must be set' });

export const workloadSchema = z
  .object({
    uid: name,
    name,
    namespace: name,
    addresses: z.array(ip).min(1),
    hostname: z.string().optional(),
    network: z.string().optional(),
    tunnelProtocol: z.enum(['NONE', 'HBONE']).default('NONE'),
    trustDomain: z.string().min(1).optional(),
    serviceAccount: z.string().min(1).default('default'),
    waypoint: gatewayAddressSchema.optional(),
    node: z.string().optional(),
    canonicalName: z.string().optional(),
    canonicalRevision: z.string().optional(),
    workloadType: z.enum(['DEPLOYMENT', 'CRONJOB', 'POD', 'JOB']).optional(),
    workloadName: z.string().optional(),
    services: z
      .record(
        z.string().regex(/^[^/]+\/[^/]+$/, 'service key must be "namespace/hostname"'),
        z.object({ ports: z.array(portSchema) }).strict(),
      )
      .default({}),
    authorizationPolicies: z.array(z.string()).optional(),
    status: z.enum(['HEALTHY', 'UNHEALTHY']).optional(),
    clusterId: z.string().optional(),
    capacity: z.number().int().min(0).max(0xffffffff).optional(),
    locality: z.object({ region: z.string().optional(), zone: z.string().optional(), subzone: z.string().optional() }).strict().optional(),
  })
  .strict();

export const serviceSchema = z
  .object({
    name,
    namespace: name,
    hostname: name,
    addresses: z.array(ip).default([]),
    ports: z.array(portSchema).default([]),
    subjectAltNames: z.array(z.string()).optional(),
    waypoint: gatewayAddressSchema.optional(),
  })
  .strict();

const emptyObject = z.object({}).strict();
const stringMatch = z.union([
  z.object({ exact: z.string() }).strict(),
  z.object({ prefix: z.string() }).strict(),
  z.object({ suffix: z.string() }).strict(),
  z.object({ presence: emptyObject }).strict(),
]);
const addressMatch = z
  .object({ address: ip, length: z.number().int().min(0).max(128) })
  .strict()
  .refine((a) => a.length <= (isIP(a.address) === 4 ? 32 : 128), { message: 'prefix length too long for address family' });

const matchSchema = z
  .object({
    namespaces: z.array(stringMatch).optional(),
    notNamespaces: z.array(stringMatch).optional(),
    principals: z.array(stringMatch).optional(),
    notPrincipals: z.array(stringMatch).optional(),
    sourceIps: z.array(addressMatch).optional(),
    notSourceIps: z.array(addressMatch).optional(),
    destinationIps: z.array(addressMatch).optional(),
    notDestinationIps: z.array(addressMatch).optional(),
    destinationPorts: z.array(port).optional(),
    notDestinationPorts: z.array(port).optional(),
  })
  .strict();

export const authorizationSchema = z
  .object({
    name,
    namespace: z.string().default(''),
    scope: z.enum(['GLOBAL', 'NAMESPACE', 'WORKLOAD_SELECTOR']).default('GLOBAL'),
    action: z.enum(['ALLOW', 'DENY']).default('ALLOW'),
    rules: z.array(z.object({ clauses: z.array(z.object({ matches: z.array(matchSchema) }).strict()).default([]) }).strict()).default([]),
    dryRun: z.boolean().optional(),
  })
  .strict();

const localConfigSchema = z
  .object({
    node: name,
    trustDomain: z.string().min(1).default('cluster.local'),
    ca: z.object({ certFile: name, keyFile: name }).strict().optional(),
    uplinks: z.array(name).optional(),
    workloads: z.array(workloadSchema).default([]),
    services: z.array(serviceSchema).default([]),
    policies: z.array(authorizationSchema).default([]),
  })
  .strict();

export interface LocalConfig extends MeshSnapshot {
  node: string;
  /** Local mode's signing CA; absent when certificates come from the mesh CA. */
  ca?: { certFile: string; keyFile: string };
  uplinks: string[] | undefined;
}

function formatPath(path: (string | number)[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out ? `.${part}` : part;
  return out || '(top level)';
}

/** "path: message" for the first `limit` issues, paths under `prefix` when given. */
export function describeIssues(error: z.ZodError, prefix?: string, limit = 10): string[] {
  return error.issues.slice(0, limit).map((i) => `${formatPath(prefix === undefined ? i.path : [prefix, ...i.path])}: ${i.message}`);
}

/** The first address that two workloads share, or undefined. Addresses must be unique: the data path looks workloads up by IP. */
export function findAddressConflict(workloads: ReadonlyArray<Pick<Workload, 'uid' | 'addresses'>>): { index: number; address: string; otherUid: string } | undefined {
  const seen = new Map<string, string>();
  for (const [index, w] of workloads.entries()) {
    for (const address of w.addresses) {
      const otherUid = seen.get(address);
      if (otherUid !== undefined) return { index, address, otherUid };
      seen.set(address, w.uid);
    }
  }
  return undefined;
}

/** Validate an already-parsed document. Relative CA paths resolve against `baseDir`. */
export function parseLocalConfig(doc: unknown, source: string, baseDir: string): LocalConfig {
  const result = localConfigSchema.safeParse(doc);
  if (!result.success) {
    const problems = describeIssues(result.error);
    throw new AmeshError('AMESH_LOCAL_CONFIG_INVALID', `invalid local config ${source}:\n  ${problems.join('\n  ')}`, {
      hint: 'fix the named fields; the agent keeps serving its last good configuration',
    });
  }
  const cfg = result.data;
  const conflict = findAddressConflict(cfg.workloads);
  if (conflict) {
    throw new AmeshError('AMESH_LOCAL_CONFIG_INVALID', `invalid local config ${source}:\n  workloads[${conflict.index}].addresses: ${conflict.address} is also used by workload ${conflict.otherUid}`);
  }
  return {
    node: cfg.node,
    trustDomain: cfg.trustDomain,
    ...(cfg.ca ? { ca: { certFile: resolve(baseDir, cfg.ca.certFile), keyFile: resolve(baseDir, cfg.ca.keyFile) } } : {}),
    uplinks: cfg.uplinks,
    workloads: cfg.workloads,
    services: cfg.services,
    policies: cfg.policies,
  };
}

export async function loadLocalConfig(path: string): Promise<LocalConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new AmeshError('AMESH_LOCAL_CONFIG_INVALID', `cannot read local config ${path}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new AmeshError('AMESH_LOCAL_CONFIG_INVALID', `local config ${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`, { cause: err });
  }
  return parseLocalConfig(doc, path, dirname(resolve(path)));
}
