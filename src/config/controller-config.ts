/**
 * Every setting of the controller (`amesh controller`), read once from the environment,
 * validated, frozen. Each entry says its default and why; an invalid value fails start-up naming
 * the variable. Same shape as agent-config.ts (ztunnel's config.rs pattern).
 */
import { DEFAULT_TRUSTED_NODE_AGENTS } from '../controller/ca/types.js';
import { DEFAULT_GATEWAY_IMAGE } from '../controller/gateway/ingress-render.js';
import { DEFAULT_WAYPOINT_IMAGE } from '../controller/waypoint/render.js';
import { AmeshError } from '../errors/amesh-error.js';
import { intSetting, invalidSetting, oneOfSetting, readSettings, type Setting } from './env-settings.js';
import { CA_PORT } from '../identity/ca-proto.js';
import { isValidTrustDomain } from '../identity/spiffe.js';

export interface ControllerConfig {
  logLevel: string;
  /** The CA's gRPC (TLS) port. */
  caPort: number;
  /** Readiness (`GET /healthz/ready`): root loaded, pods synced, CA listening. */
  readinessPort: number;
  /** Monitoring HTTP: `/metrics`, `/debug/syncz` (proxy sync status), `/ready`; 0 = any free port. */
  monitoringPort: number;
  trustDomain: string;
  /** Lifetime of a workload certificate when the request names none (or 0). */
  certDefaultTtlSeconds: number;
  /** Longest lifetime the CA grants; longer requests are capped to it. */
  certMaxTtlSeconds: number;
  /** Where the controller keeps its CA Secrets and runs (POD_NAMESPACE when set by the Deployment). */
  namespace: string;
  /** `<namespace>/<serviceAccount>` of node agents allowed to ask on behalf of local pods. */
  trustedNodeAgents: string[];
  /** How often the root store re-reads its Secrets (rotation by kubectl or another controller). */
  rootPollMs: number;
  /** How long a graceful stop may take before the process exits anyway. */
  drainTimeoutMs: number;
  /** Mesh-wide policy lives here (Istio's root namespace); default: the controller's namespace. */
  rootNamespace: string;
  /** The cluster DNS domain in service hostnames (`<svc>.<ns>.svc.<domain>`). */
  clusterDomain: string;
  /** A burst of Kubernetes changes within this window becomes one xDS push. */
  xdsDebounceMs: number;
  /** Longest a push may wait while changes keep arriving. */
  xdsMaxDelayMs: number;
  /** Restart a watch that has delivered nothing (no event, no bookmark) for this long. */
  watchStallMs: number;
  /** Image of the waypoint Deployments the controller creates (one per waypoint Gateway). */
  waypointImage: string;
  /** Image of the ingress gateway Deployments the controller creates. */
  gatewayImage: string;
}

const invalid = invalidSetting;
const int = intSetting;
const oneOf = oneOfSetting;
const trustDomain = (raw: string, env: string): string => {
  if (!isValidTrustDomain(raw)) invalid(env, raw, 'a SPIFFE trust domain (lower-case letters, digits, ".", "-", "_")');
  return raw;
};
// RFC 1123 label, as Kubernetes namespace names are.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const namespaceName = (raw: string, env: string): string => {
  if (!DNS_LABEL.test(raw)) invalid(env, raw, 'a Kubernetes namespace name (RFC 1123 label)');
  return raw;
};
const serviceAccountList = (raw: string, env: string): string[] => {
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    const [ns, sa, extra] = item.split('/');
    if (extra !== undefined || !ns || !sa || !DNS_LABEL.test(ns)) invalid(env, raw, `a comma-separated list of <namespace>/<serviceAccount> (bad entry ${JSON.stringify(item)})`);
  }
  return items;
};

// An image reference as Kubernetes takes it: [registry[:port]/]path[:tag][@sha256:digest].
const IMAGE_REFERENCE = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d{1,5})?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
const imageReference = (raw: string, env: string): string => {
  if (!IMAGE_REFERENCE.test(raw)) invalid(env, raw, 'an image reference such as amesh/waypoint:0.1.0 or registry.example.com:5000/amesh/waypoint:1.2');
  return raw;
};

const SETTINGS = {
  logLevel: { env: 'AMESH_LOG_LEVEL', default: 'info', parse: oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const) },
  // Istio's CA port: node agents built for istiod (ztunnel) find us without configuration.
  caPort: { env: 'AMESH_CA_PORT', default: CA_PORT, parse: int(0, 65535) },
  // Istio's readiness port; the Deployment's probe points at it.
  readinessPort: { env: 'AMESH_READINESS_PORT', default: 15021, parse: int(0, 65535) },
  // istiod's monitoring port (its /metrics and /debug/syncz live there too).
  monitoringPort: { env: 'AMESH_CONTROLLER_MONITORING_PORT', default: 15014, parse: int(0, 65535) },
  trustDomain: { env: 'AMESH_TRUST_DOMAIN', default: 'cluster.local', parse: trustDomain },
  // Istio's default workload certificate lifetime (24 h); agents rotate at half of it.
  certDefaultTtlSeconds: { env: 'AMESH_CERT_DEFAULT_TTL_SECONDS', default: 86_400, parse: int(60, 31_536_000) },
  // istiod caps at 90 days (MAX_WORKLOAD_CERT_TTL); we cap at 24 h so a stolen workload key is
  // useful for a day at most. Raise it when agents must ask for longer lifetimes.
  certMaxTtlSeconds: { env: 'AMESH_CERT_MAX_TTL_SECONDS', default: 86_400, parse: int(60, 31_536_000) },
  // Where istiod keeps istio-ca-secret / cacerts; the Deployment sets POD_NAMESPACE.
  namespace: { env: 'AMESH_CONTROLLER_NAMESPACE', default: 'amesh-system', parse: namespaceName },
  trustedNodeAgents: { env: 'AMESH_TRUSTED_NODE_AGENTS', default: [...DEFAULT_TRUSTED_NODE_AGENTS], parse: serviceAccountList },
  // Two GETs every 5 s is cheap, and a kubectl rotation takes effect well within a probe period.
  rootPollMs: { env: 'AMESH_ROOT_POLL_MS', default: 5000, parse: int(100, 600_000) },
  // Kubernetes' default grace period is 30 s; leave room for the kubelet's own kill.
  drainTimeoutMs: { env: 'AMESH_DRAIN_TIMEOUT_MS', default: 20_000, parse: int(0, 3_600_000) },
  // Empty = the controller's namespace (amesh-system), as istiod's root namespace is its own.
  rootNamespace: { env: 'AMESH_ROOT_NAMESPACE', default: '', parse: namespaceName },
  clusterDomain: { env: 'AMESH_CLUSTER_DOMAIN', default: 'cluster.local', parse: trustDomain },
  // A Deployment's pods starting together become one push; 50 ms leaves room for translation and
  // the agents inside the 200 ms an incremental change may take (bench:xds).
  xdsDebounceMs: { env: 'AMESH_XDS_DEBOUNCE_MS', default: 50, parse: int(0, 10_000) },
  xdsMaxDelayMs: { env: 'AMESH_XDS_MAX_DELAY_MS', default: 1000, parse: int(0, 60_000) },
  // API servers send a BOOKMARK at least every minute or so to watchers that ask for them; five
  // minutes of silence means a half-dead connection, not a quiet cluster.
  watchStallMs: { env: 'AMESH_WATCH_STALL_MS', default: 300_000, parse: int(1000, 3_600_000) },
  // The images the controller puts into the Deployments it renders from waypoint/waypoint.yaml
  // and waypoint/gateway.yaml. `amesh install --set image.hub=…,image.tag=…` sets both in the
  // controller's Deployment (src/install/render.ts), so every amesh image comes from one place.
  waypointImage: { env: 'AMESH_WAYPOINT_IMAGE', default: DEFAULT_WAYPOINT_IMAGE, parse: imageReference },
  gatewayImage: { env: 'AMESH_GATEWAY_IMAGE', default: DEFAULT_GATEWAY_IMAGE, parse: imageReference },
} satisfies { [K in keyof ControllerConfig]: Setting<ControllerConfig[K]> };

export function controllerSettings(): ReadonlyArray<{ key: string; env: string; default: unknown }> {
  return Object.entries(SETTINGS).map(([key, s]) => ({ key, env: s.env, default: s.default }));
}

/** Read the controller config from `env` (process.env in production). */
export function readControllerConfig(env: NodeJS.ProcessEnv): Readonly<ControllerConfig> {
  const cfg = readSettings<ControllerConfig>(SETTINGS, env);
  // The Downward API names the namespace we run in; an explicit setting still wins.
  if (!env.AMESH_CONTROLLER_NAMESPACE && env.POD_NAMESPACE) cfg.namespace = namespaceName(env.POD_NAMESPACE, 'POD_NAMESPACE');
  if (!cfg.rootNamespace) cfg.rootNamespace = cfg.namespace;
  if (cfg.certDefaultTtlSeconds > cfg.certMaxTtlSeconds) {
    throw new AmeshError(
      'AMESH_CONFIG_INVALID',
      `AMESH_CERT_DEFAULT_TTL_SECONDS (${cfg.certDefaultTtlSeconds}) is longer than AMESH_CERT_MAX_TTL_SECONDS (${cfg.certMaxTtlSeconds})`,
      { hint: 'the default lifetime must fit under the cap' },
    );
  }
  cfg.trustedNodeAgents = Object.freeze([...cfg.trustedNodeAgents]) as string[];
  return Object.freeze(cfg);
}
