/**
 * The settings every L7 proxy process shares (the waypoint, src/waypoint/settings.ts, and the
 * ingress gateway, src/gateway/settings.ts): the downward-API pod facts, the mesh CA and xDS
 * server, admin ports, upstream dialling. Each proxy adds its own entries (its name variable,
 * its listeners) to PROXY_SETTINGS and reads them with `readProxySettings`, so one Pod contract
 * is written once: every default with its reason, every parse error naming the variable.
 */
import { isIP } from 'node:net';
import { intSetting, invalidSetting, oneOfSetting, readSettings, type Setting } from '../config/env-settings.js';
import { AmeshError } from '../errors/amesh-error.js';
import { isValidTrustDomain, toSpiffeUri, type WorkloadIdentity } from '../identity/spiffe.js';

export interface ProxySettings {
  logLevel: string;
  podName: string;
  podNamespace: string;
  podIp: string;
  nodeName: string;
  trustDomain: string;
  clusterId: string;
  /** The mesh CA (`host:port`). */
  caAddress: string;
  caRootCertFile: string;
  caTokenFile: string;
  caServerName: string;
  certTtlSeconds: number;
  trustBundlePollMs: number;
  /** The xDS server (`host:port`). */
  xdsAddress: string;
  xdsServerName: string;
  listenAddress4: string;
  listenAddress6: string;
  /** The HBONE port of the endpoints' node agents (and of waypoints). */
  upstreamHbonePort: number;
  readinessPort: number;
  adminPort: number;
  metricsPort: number;
  connectTimeoutMs: number;
  upstreamIdleTimeoutMs: number;
  drainTimeoutMs: number;
  /** After SIGTERM, keep accepting new connections up to this long while senders still arrive (drain-notice.ts); 0 = close listeners at once. */
  drainNoticeMs: number;
  /** RequestAuthentication `jwksUri` fetches: whole-exchange deadline. */
  jwksFetchTimeoutMs: number;
  /** How long a fetched JWKS is used before it is fetched again. */
  jwksRefreshMs: number;
  /** Request header block larger than this is answered 431 (HTTP/1.1 and HTTP/2). */
  maxRequestHeaderBytes: number;
}

export const str = (raw: string): string => raw.trim();

const hostPort = (raw: string, env: string): string => {
  const m = /^(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(raw.trim());
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) invalidSetting(env, raw, 'host:port (IPv6 as [addr]:port), e.g. amesh-controller.amesh-system.svc:15012');
  return raw.trim();
};
const ip = (raw: string, env: string): string => {
  if (isIP(raw.trim()) === 0) invalidSetting(env, raw, 'an IPv4 or IPv6 address');
  return raw.trim();
};
const trustDomain = (raw: string, env: string): string => {
  if (!isValidTrustDomain(raw.trim())) invalidSetting(env, raw, 'a SPIFFE trust domain (lower-case letters, digits, dots, dashes, underscores)');
  return raw.trim();
};

/** A Kubernetes object name (RFC 1123 label is what a Gateway / ServiceAccount name must be here). */
export const k8sName = (raw: string, env: string): string => {
  const v = raw.trim();
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(v)) invalidSetting(env, raw, 'a Kubernetes object name (lower-case letters, digits, dashes, dots)');
  return v;
};

export const PROXY_SETTINGS = {
  logLevel: { env: 'AMESH_LOG_LEVEL', default: 'info', parse: oneOfSetting(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const) },
  // Downward API names as Istio's proxies read them.
  podName: { env: 'POD_NAME', default: '', parse: str },
  podNamespace: { env: 'POD_NAMESPACE', default: '', parse: k8sName },
  podIp: { env: 'INSTANCE_IP', default: '', parse: ip },
  nodeName: { env: 'NODE_NAME', default: '', parse: str },
  // Istio's default trust domain.
  trustDomain: { env: 'AMESH_TRUST_DOMAIN', default: 'cluster.local', parse: trustDomain },
  clusterId: { env: 'AMESH_CLUSTER_ID', default: 'Kubernetes', parse: str },
  // Required: a proxy has no local CA mode.
  caAddress: { env: 'AMESH_CA_ADDRESS', default: '', parse: hostPort },
  // The istio-ca-root-cert ConfigMap, where Istio mounts it.
  caRootCertFile: { env: 'AMESH_CA_ROOT_CERT_FILE', default: '/var/run/secrets/istio/root-cert.pem', parse: str },
  // The projected token (audience istio-ca) of the proxy's own ServiceAccount.
  caTokenFile: { env: 'AMESH_CA_TOKEN_FILE', default: '/var/run/secrets/tokens/istio-token', parse: str },
  // Empty: the host of AMESH_CA_ADDRESS.
  caServerName: { env: 'AMESH_CA_SERVER_NAME', default: '', parse: str },
  // Istio's default workload certificate lifetime.
  certTtlSeconds: { env: 'AMESH_CERT_TTL_SECONDS', default: 86_400, parse: intSetting(60, 31_536_000) },
  // A root rotation should reach the proxy within seconds, as it reaches the node agents.
  trustBundlePollMs: { env: 'AMESH_TRUST_BUNDLE_POLL_MS', default: 1000, parse: intSetting(50, 600_000) },
  // Required: routes and endpoints come only from the controller.
  xdsAddress: { env: 'AMESH_XDS_ADDRESS', default: '', parse: hostPort },
  // Empty: the CA's server name when xDS and CA share a host (one port, as istiod), else the xDS host.
  xdsServerName: { env: 'AMESH_XDS_SERVER_NAME', default: '', parse: str },
  // A proxy is an ordinary pod: it listens on all its addresses.
  listenAddress4: { env: 'AMESH_LISTEN_ADDRESS4', default: '0.0.0.0', parse: str },
  // `none`: no IPv6 listener (IPv4-only pods and tests).
  listenAddress6: { env: 'AMESH_LISTEN_ADDRESS6', default: '::', parse: (raw: string) => (raw.trim() === 'none' ? '' : raw.trim()) },
  upstreamHbonePort: { env: 'AMESH_UPSTREAM_HBONE_PORT', default: 15008, parse: intSetting(1, 65535) },
  readinessPort: { env: 'AMESH_READINESS_PORT', default: 15021, parse: intSetting(0, 65535) },
  adminPort: { env: 'AMESH_ADMIN_PORT', default: 15000, parse: intSetting(0, 65535) },
  metricsPort: { env: 'AMESH_METRICS_PORT', default: 15020, parse: intSetting(0, 65535) },
  // As the node agent: long enough for a cross-zone handshake, short enough to fail fast.
  connectTimeoutMs: { env: 'AMESH_CONNECT_TIMEOUT_MS', default: 5000, parse: intSetting(1, 600_000) },
  // Below common servers' idle timeouts would race them; 30 s is what Envoy's pools keep idle by default (1 h) trimmed.
  upstreamIdleTimeoutMs: { env: 'AMESH_UPSTREAM_IDLE_TIMEOUT_MS', default: 30_000, parse: intSetting(100, 3_600_000) },
  // Kubernetes' default grace period is 30 s; leave room for the kubelet's own kill.
  drainTimeoutMs: { env: 'AMESH_DRAIN_TIMEOUT_MS', default: 20_000, parse: intSetting(0, 3_600_000) },
  // Node agents stop sending to a deleted or rolled waypoint only once they applied the controller's push (1–10 s on a loaded node); Istio's terminationDrainDuration is 5 s.
  drainNoticeMs: { env: 'AMESH_DRAIN_NOTICE_MS', default: 10_000, parse: intSetting(0, 600_000) },
  // An in-cluster key server answers in milliseconds; requests needing the keys wait for it.
  jwksFetchTimeoutMs: { env: 'AMESH_JWKS_FETCH_TIMEOUT_MS', default: 5000, parse: intSetting(100, 60_000) },
  // istiod refreshes JWKS every 20 min (PILOT_JWT_PUB_KEY_REFRESH_INTERVAL); rotated keys are also picked up on an unknown kid.
  jwksRefreshMs: { env: 'AMESH_JWKS_REFRESH_MS', default: 20 * 60_000, parse: intSetting(1000, 86_400_000) },
  // Envoy's max_request_headers_kb default (60 KiB), which Istio waypoints and gateways inherit.
  maxRequestHeaderBytes: { env: 'AMESH_MAX_REQUEST_HEADER_BYTES', default: 61_440, parse: intSetting(1024, 1_048_576) },
} satisfies { [K in keyof ProxySettings]: Setting<ProxySettings[K]> };

const hostOf = (address: string): string => address.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');

export interface ReadProxySettingsOptions {
  /** Tests feed the config directly: then no CA / xDS address is required. */
  requireControlPlane?: boolean;
}

/**
 * Reads `table` (PROXY_SETTINGS plus the proxy's own entries), requires the proxy's name
 * (`nameKey`, set by its Deployment), the namespace and — unless a test says otherwise — the
 * control plane, derives the TLS server names, and freezes the result.
 */
export function readProxySettings<S extends ProxySettings>(
  table: { [K in keyof S]: Setting<S[K]> },
  env: NodeJS.ProcessEnv,
  proxy: { nameKey: keyof S & string; role: string },
  opts: ReadProxySettingsOptions = {},
): Readonly<S> {
  const cfg = readSettings<S>(table, env);
  const missing = (name: string, hint: string): never => {
    throw new AmeshError('AMESH_CONFIG_INVALID', `${name} is not set`, { hint });
  };
  if (!cfg[proxy.nameKey]) missing(table[proxy.nameKey].env, `the ${proxy.role} Deployment sets it to its own name (also its ServiceAccount's)`);
  if (!cfg.podNamespace) missing('POD_NAMESPACE', 'set it from the downward API (metadata.namespace)');
  if (opts.requireControlPlane !== false) {
    if (!cfg.caAddress) missing('AMESH_CA_ADDRESS', `the ${proxy.role}’s certificate comes from the mesh CA, e.g. amesh-controller.amesh-system.svc:15012`);
    if (!cfg.xdsAddress) missing('AMESH_XDS_ADDRESS', `the ${proxy.role}’s routes come from the controller over xDS, e.g. amesh-controller.amesh-system.svc:15012`);
  }
  if (!cfg.caServerName && cfg.caAddress) cfg.caServerName = hostOf(cfg.caAddress);
  if (!cfg.xdsServerName && cfg.xdsAddress) cfg.xdsServerName = cfg.caAddress && hostOf(cfg.caAddress) === hostOf(cfg.xdsAddress) ? cfg.caServerName : hostOf(cfg.xdsAddress);
  return Object.freeze(cfg);
}

/** A proxy's own identity: its ServiceAccount is named like its Deployment / Gateway. */
export function proxyIdentity(s: Pick<ProxySettings, 'trustDomain' | 'podNamespace'>, name: string): WorkloadIdentity {
  return { trustDomain: s.trustDomain, namespace: s.podNamespace, serviceAccount: name };
}

export function proxyIdentityUri(s: Pick<ProxySettings, 'trustDomain' | 'podNamespace'>, name: string): string {
  return toSpiffeUri(proxyIdentity(s, name));
}
