/**
 * The zod schema of `WaypointConfig` (src/l7/config.ts), field for field: what the waypoint
 * accepts from the controller (src/xds/waypoint-codec.ts decodes with it, and the controller
 * checks with it before publishing, so it never serves what a waypoint would NACK).
 *
 * Beyond the shapes (every object strict: an unknown field is an error, not silently dropped):
 * - regular expressions must compile as JavaScript RegExps (the engine's dialect; Istio and the
 *   Gateway API specify RE2, whose common subset JS shares — RE2-only syntax fails here, loudly);
 * - ports are 1..65535, weights and percentages non-negative, a forwarding route has a backend
 *   with weight > 0 (a total of 0 could pick nothing);
 * - route names are unique per port, cluster names unique, and every cluster a port, route,
 *   mirror or L4 route names exists in `clusters`;
 * - a port's `defaultCluster` may be '' (404 `NR` for unrouted requests) only in an ingress
 *   gateway's config (`kind: 'gateway'`); a waypoint always has its service's cluster;
 * - `listeners` only with `kind: 'gateway'`: ports unique, an HTTPS listener has at least one
 *   certificate (non-empty PEMs), certificates only on HTTPS and `l4Routes` only on TLS / TCP
 *   listeners (a TLS / TCP listener may have none: its connections are closed, `NR`);
 *   `Endpoint.waypoint` is an IP address, and only on an HBONE endpoint.
 * Cross-field checks report the same `path: problem` form as zod's own issues.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import type { RetryOn, WaypointConfig } from './config.js';
import { telemetrySettingsSchema } from '../telemetry/telemetry-config.js';

const port = z.number().int().min(1).max(65535);
const nonEmpty = z.string().min(1);

function compiles(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

const stringMatch = z
  .object({ kind: z.enum(['exact', 'prefix', 'regex']), value: z.string() })
  .strict()
  .superRefine((m, ctx) => {
    if (m.kind === 'regex' && !compiles(m.value)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['value'], message: `${JSON.stringify(m.value)} is not a valid regular expression` });
  });

const headerMatch = z.object({ name: nonEmpty, match: stringMatch.optional(), invert: z.boolean().optional() }).strict();
const queryParamMatch = z.object({ name: nonEmpty, match: stringMatch.optional() }).strict();

const requestMatch = z
  .object({
    path: stringMatch.optional(),
    method: nonEmpty.optional(),
    headers: z.array(headerMatch).optional(),
    queryParams: z.array(queryParamMatch).optional(),
    authority: stringMatch.optional(),
  })
  .strict();

const headerMutation = z
  .object({
    set: z.record(nonEmpty, z.string()).optional(),
    add: z.record(nonEmpty, z.string()).optional(),
    remove: z.array(nonEmpty).optional(),
  })
  .strict();

const pathModifier = z.object({ kind: z.enum(['full', 'prefix']), value: z.string() }).strict();

const urlRewrite = z.object({ hostname: nonEmpty.optional(), path: pathModifier.optional() }).strict();

export const REDIRECT_STATUS_CODES: readonly number[] = [301, 302, 303, 307, 308];

const redirect = z
  .object({
    scheme: z.enum(['http', 'https']).optional(),
    hostname: nonEmpty.optional(),
    port: port.optional(),
    path: pathModifier.optional(),
    statusCode: z
      .number()
      .int()
      .refine((c) => REDIRECT_STATUS_CODES.includes(c), { message: `must be one of ${REDIRECT_STATUS_CODES.join(', ')}` }),
  })
  .strict();

const mirror = z.object({ cluster: nonEmpty, percent: z.number().min(0).max(100).optional() }).strict();

const weightedBackend = z
  .object({
    cluster: nonEmpty,
    weight: z.number().int().min(0),
    requestHeaders: headerMutation.optional(),
    responseHeaders: headerMutation.optional(),
  })
  .strict();

const routeAction = z
  .discriminatedUnion('kind', [
    z.object({ kind: z.literal('forward'), backends: z.array(weightedBackend).min(1) }).strict(),
    z.object({ kind: z.literal('redirect'), redirect }).strict(),
    z.object({ kind: z.literal('direct-response'), status: z.number().int().min(200).max(599), body: z.string().optional() }).strict(),
  ])
  .superRefine((a, ctx) => {
    if (a.kind === 'forward' && !a.backends.some((b) => b.weight > 0)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['backends'], message: 'the backends’ weights total 0' });
  });

const percent = z.number().min(0).max(100);
const millis = z.number().int().min(0);
const positiveInt = z.number().int().min(1);

export const RETRY_ON: readonly RetryOn[] = ['5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-4xx', 'refused-stream', 'retriable-status-codes', 'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable'];

const retryPolicy = z
  .object({
    attempts: z.number().int().min(0),
    perTryTimeoutMs: millis.optional(),
    retryOn: z.array(z.enum(RETRY_ON as [RetryOn, ...RetryOn[]])),
    retriableStatusCodes: z.array(z.number().int().min(100).max(599)).optional(),
    otherHost: z.boolean(),
    backoffBaseMs: millis.optional(),
  })
  .strict();

const faultPolicy = z
  .object({
    delay: z.object({ percent, delayMs: millis }).strict().optional(),
    abort: z
      .object({ percent, httpStatus: z.number().int().min(200).max(599).optional(), grpcStatus: z.number().int().min(0).max(16).optional() })
      .strict()
      .refine((a) => a.httpStatus !== undefined || a.grpcStatus !== undefined, { message: 'an abort needs httpStatus or grpcStatus' })
      .optional(),
  })
  .strict();

const httpRoute = z
  .object({
    name: nonEmpty,
    matches: z.array(requestMatch),
    action: routeAction,
    requestHeaders: headerMutation.optional(),
    responseHeaders: headerMutation.optional(),
    rewrite: urlRewrite.optional(),
    mirrors: z.array(mirror).optional(),
    timeoutMs: z.number().min(0).optional(),
    retries: retryPolicy.optional(),
    fault: faultPolicy.optional(),
  })
  .strict();

const waypointPort = z
  .object({
    port,
    protocol: z.enum(['HTTP', 'HTTP2', 'GRPC', 'TCP', 'AUTO']),
    routes: z.array(httpRoute),
    defaultCluster: z.string(),
    defaultRetries: retryPolicy.optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    const seen = new Set<string>();
    p.routes.forEach((r, i) => {
      if (seen.has(r.name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['routes', i, 'name'], message: `duplicate route name ${JSON.stringify(r.name)} on port ${p.port}` });
      seen.add(r.name);
    });
  });

const waypointService = z
  .object({
    key: nonEmpty,
    namespace: nonEmpty,
    hostname: nonEmpty,
    addresses: z.array(nonEmpty),
    ports: z.array(waypointPort),
  })
  .strict();

const endpoint = z
  .object({
    address: nonEmpty,
    port,
    identity: z.string(),
    hbone: z.boolean(),
    weight: z.number().int().min(0).optional(),
    workload: z.string().optional(),
    locality: z.string().optional(),
    waypoint: z
      .string()
      .refine((a) => isIP(a) !== 0, { message: 'must be an IP address (the waypoint’s)' })
      .optional(),
    meta: z.object({ workloadName: z.string(), namespace: z.string(), canonicalName: z.string(), canonicalRevision: z.string() }).strict().optional(),
  })
  .strict()
  .refine((e) => e.waypoint === undefined || e.hbone, { path: ['waypoint'], message: 'an endpoint reached through a waypoint is reached over HBONE (hbone: true)' });

const hashPolicy = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('header'), name: nonEmpty }).strict(),
  z.object({ kind: z.literal('cookie'), name: nonEmpty, path: z.string().optional(), ttlMs: millis.optional() }).strict(),
  z.object({ kind: z.literal('source-ip') }).strict(),
  z.object({ kind: z.literal('query'), name: nonEmpty }).strict(),
]);

const connectionPool = z
  .object({
    maxConnections: positiveInt.optional(),
    connectTimeoutMs: positiveInt.optional(),
    maxPendingRequests: positiveInt.optional(),
    maxRequests: positiveInt.optional(),
    maxRequestsPerConnection: positiveInt.optional(),
    maxRetries: z.number().int().min(0).optional(),
    idleTimeoutMs: positiveInt.optional(),
  })
  .strict();

const outlierDetection = z
  .object({
    consecutive5xxErrors: z.number().int().min(0).optional(),
    consecutiveGatewayErrors: z.number().int().min(0).optional(),
    intervalMs: positiveInt,
    baseEjectionTimeMs: positiveInt,
    maxEjectionPercent: percent,
    minHealthPercent: percent.optional(),
  })
  .strict();

const localityLb = z
  .object({
    local: z.string(),
    failover: z.array(z.object({ from: nonEmpty, to: nonEmpty }).strict()).optional(),
  })
  .strict();

const cluster = z
  .object({
    name: nonEmpty,
    service: nonEmpty,
    port,
    subset: nonEmpty.optional(),
    lb: z.enum(['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM']),
    hash: hashPolicy.optional(),
    connectionPool: connectionPool.optional(),
    outlierDetection: outlierDetection.optional(),
    localityLb: localityLb.optional(),
    endpoints: z.array(endpoint),
  })
  .strict();

/** Istio's value syntax is checked by the engine when it compiles; here only the shapes. */
const strings = z.array(z.string()).optional();

const l7Source = z
  .object({
    principals: strings,
    notPrincipals: strings,
    requestPrincipals: strings,
    notRequestPrincipals: strings,
    namespaces: strings,
    notNamespaces: strings,
    ipBlocks: strings,
    notIpBlocks: strings,
    remoteIpBlocks: strings,
    notRemoteIpBlocks: strings,
  })
  .strict();

const l7Operation = z
  .object({ hosts: strings, notHosts: strings, ports: strings, notPorts: strings, methods: strings, notMethods: strings, paths: strings, notPaths: strings })
  .strict();

const l7Condition = z.object({ key: nonEmpty, values: strings, notValues: strings }).strict();

const l7Policy = z
  .object({
    name: nonEmpty,
    action: z.enum(['ALLOW', 'DENY', 'AUDIT']),
    services: z.array(nonEmpty).optional(),
    rules: z.array(z.object({ from: z.array(l7Source).optional(), to: z.array(l7Operation).optional(), when: z.array(l7Condition).optional() }).strict()),
  })
  .strict();

const jwtRule = z
  .object({
    policy: nonEmpty,
    services: z.array(nonEmpty).optional(),
    issuer: nonEmpty,
    audiences: z.array(nonEmpty).optional(),
    jwks: z.string().optional(),
    jwksUri: z.string().url().optional(),
    fromHeaders: z.array(z.object({ name: nonEmpty, prefix: z.string().optional() }).strict()).optional(),
    fromParams: z.array(nonEmpty).optional(),
    forwardOriginalToken: z.boolean().optional(),
    outputPayloadToHeader: nonEmpty.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.jwks === undefined && r.jwksUri === undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['jwks'], message: 'a JWT rule needs jwks or jwksUri' });
    if (r.jwks !== undefined) {
      try {
        const parsed = JSON.parse(r.jwks) as { keys?: unknown };
        if (!Array.isArray(parsed.keys)) throw new Error('no keys array');
      } catch (err) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['jwks'], message: `not a JWKS document (${(err as Error).message})` });
      }
    }
  });

const hostnamePatterns = z.array(nonEmpty);

const gatewayCertificate = z.object({ name: nonEmpty, hostnames: hostnamePatterns, certChain: nonEmpty, privateKey: nonEmpty }).strict();

const l4Backend = z.object({ cluster: nonEmpty, weight: z.number().int().min(0) }).strict();

const l4Route = z
  .object({ name: nonEmpty, hostnames: hostnamePatterns.optional(), backends: z.array(l4Backend).min(1) })
  .strict()
  .superRefine((r, ctx) => {
    if (!r.backends.some((b) => b.weight > 0)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['backends'], message: 'the backends’ weights total 0' });
  });

const gatewayListener = z
  .object({
    name: nonEmpty,
    port,
    protocol: z.enum(['HTTP', 'HTTPS', 'TLS', 'TCP']),
    certificates: z.array(gatewayCertificate).optional(),
    l4Routes: z.array(l4Route).optional(),
  })
  .strict()
  .superRefine((l, ctx) => {
    if (l.protocol === 'HTTPS' && (l.certificates ?? []).length === 0) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['certificates'], message: 'an HTTPS listener needs at least one certificate' });
    if (l.protocol !== 'HTTPS' && l.certificates !== undefined && l.certificates.length > 0) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['certificates'], message: `certificates are for HTTPS listeners, not ${l.protocol}` });
    if ((l.protocol === 'HTTP' || l.protocol === 'HTTPS') && l.l4Routes !== undefined && l.l4Routes.length > 0) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['l4Routes'], message: `l4Routes are for TLS and TCP listeners; ${l.protocol} routes live in services` });
  });

type Path = Array<string | number>;

/** Every cluster reference in the config, with its path. */
function clusterReferences(c: z.infer<typeof baseSchema>): Array<{ name: string; path: Path }> {
  const refs: Array<{ name: string; path: Path }> = [];
  c.services.forEach((s, si) =>
    s.ports.forEach((p, pi) => {
      const at: Path = ['services', si, 'ports', pi];
      if (p.defaultCluster) refs.push({ name: p.defaultCluster, path: [...at, 'defaultCluster'] });
      p.routes.forEach((r, ri) => {
        if (r.action.kind === 'forward') r.action.backends.forEach((b, bi) => refs.push({ name: b.cluster, path: [...at, 'routes', ri, 'action', 'backends', bi, 'cluster'] }));
        r.mirrors?.forEach((m, mi) => refs.push({ name: m.cluster, path: [...at, 'routes', ri, 'mirrors', mi, 'cluster'] }));
      });
    }),
  );
  c.listeners?.forEach((l, li) =>
    l.l4Routes?.forEach((r, ri) => r.backends.forEach((b, bi) => refs.push({ name: b.cluster, path: ['listeners', li, 'l4Routes', ri, 'backends', bi, 'cluster'] }))),
  );
  return refs;
}

const baseSchema = z
  .object({
    namespace: nonEmpty,
    name: nonEmpty,
    identity: z.string(),
    services: z.array(waypointService),
    clusters: z.array(cluster),
    policies: z.array(l7Policy).optional(),
    jwtRules: z.array(jwtRule).optional(),
    kind: z.enum(['waypoint', 'gateway']).optional(),
    listeners: z.array(gatewayListener).optional(),
    telemetry: telemetrySettingsSchema.optional(),
  })
  .strict();

export const waypointConfigSchema: z.ZodType<WaypointConfig> = baseSchema.superRefine((c, ctx) => {
  const names = new Set<string>();
  c.clusters.forEach((cl, i) => {
    if (names.has(cl.name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['clusters', i, 'name'], message: `duplicate cluster name ${JSON.stringify(cl.name)}` });
    names.add(cl.name);
  });
  const gateway = c.kind === 'gateway';
  if (!gateway) {
    c.services.forEach((sv, si) =>
      sv.ports.forEach((p, pi) => {
        if (!p.defaultCluster) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['services', si, 'ports', pi, 'defaultCluster'], message: 'a waypoint port needs a default cluster (only an ingress gateway answers unrouted requests with 404)' });
      }),
    );
    if (c.listeners !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['listeners'], message: 'listeners are for ingress gateways (kind: gateway)' });
  }
  const ports = new Set<number>();
  c.listeners?.forEach((l, i) => {
    if (ports.has(l.port)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['listeners', i, 'port'], message: `duplicate listener port ${l.port}` });
    ports.add(l.port);
  });
  for (const ref of clusterReferences(c)) {
    if (!names.has(ref.name)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ref.path, message: `cluster ${JSON.stringify(ref.name)} is not defined in clusters` });
  }
});

function formatPath(path: Path): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out ? `.${part}` : part;
  return out;
}

/** `path: problem` for the first `limit` issues, each path under `prefix`. */
export function describeConfigIssues(error: z.ZodError, prefix: string, limit = 5): string[] {
  return error.issues.slice(0, limit).map((i) => `${formatPath([prefix, ...i.path])}: ${i.message}`);
}
