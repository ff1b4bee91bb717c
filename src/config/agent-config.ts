/**
 * Every setting of the node agent, read once from the environment, validated, frozen.
 * Each entry says its default and why; an invalid value fails start-up naming the variable.
 * (Like ztunnel's config.rs: one place to read, one place to document — README mirrors this.)
 */
import { isIP } from 'node:net';
import { AmeshError } from '../errors/amesh-error.js';
import { isValidTrustDomain } from '../identity/spiffe.js';
import { intSetting, invalidSetting, oneOfSetting, readSettings, type Setting } from './env-settings.js';

export type CaptureMode = 'auto' | 'ebpf' | 'nftables' | 'none';

export interface AgentConfig {
  logLevel: string;
  /** auto: eBPF if it loads and attaches, else nftables TPROXY. none: no capture (tests). */
  captureMode: CaptureMode;
  /** Pinned maps live here; includes the node name so several agents can share a host. */
  bpfPinRoot: string;
  bpfObjectPath: string | undefined;
  /** skb mark the capture sets; an ip rule sends marked packets to the local table. */
  captureMark: number;
  captureMask: number;
  /** SO_MARK of our listeners (checked by the BPF program) and of our outbound sockets. */
  socketMark: number;
  routeTable: number;
  routeRulePriority: number;
  /** Drop captured SYNs when no listener is there (true) or let them pass in plaintext. */
  failOpen: boolean;
  listenAddress4: string;
  listenAddress6: string;
  outboundPort: number;
  inboundPlaintextPort: number;
  hbonePort: number;
  adminPort: number;
  metricsPort: number;
  readinessPort: number;
  connectTimeoutMs: number;
  /** Connect to local pods from the original client's IP (as Istio's ztunnel does). */
  preserveSourceIp: boolean;
  drainTimeoutMs: number;
  /**
   * The listener hand-off socket (docs/upgrade.md): '@name' is abstract (per network namespace),
   * else a path; 'off' disables. Default 'auto': '@amesh-node-handoff' when capturing, off with
   * AMESH_CAPTURE_MODE=none (tests and ad-hoc agents that share a namespace must not take over
   * each other's ports).
   */
  handoffSocket: string;
  /**
   * On SIGTERM, how long the agent keeps serving (listeners and hand-off socket open, readiness
   * 503) for a successor to take over before it drains alone. Counted within the drain
   * deadline: at most half of drainTimeoutMs is used (docs/upgrade.md).
   */
  successorWaitMs: number;
  /**
   * After handing its listeners to a newer agent and draining: 'exit', or 'wait' for SIGTERM
   * (in a pod: an exit would make the kubelet restart the container, which would take the
   * listeners back). 'auto': 'wait' when POD_NAME is set.
   */
  afterHandoff: 'auto' | 'exit' | 'wait';
  certTtlSeconds: number;
  /** Extra destinations never captured, besides node IPs and link-local. */
  extraExemptCidrs: string[];
  clusterId: string;
  /** Poll interval of the local config file watcher (fs.watch misses atomic renames). */
  configPollMs: number;
  /** The mesh CA (`host:port`); empty = sign locally with the local config's `ca`. */
  caAddress: string;
  /** Mesh roots: verify the CA's serving certificate and are the trust bundle for peers. */
  caRootCertFile: string;
  /** Service-account token (audience istio-ca) presented to the CA. */
  caTokenFile: string;
  /** TLS name expected on the CA's certificate; default the host of caAddress. */
  caServerName: string;
  /** Poll interval of the trust bundle file (ConfigMap volumes change by symlink swap). */
  trustBundlePollMs: number;
  /** The xDS server (`host:port`); set = state over delta ADS instead of the local config file. */
  xdsAddress: string;
  /** TLS name expected on the xDS server's certificate; default below. */
  xdsServerName: string;
  /** This node (xDS mode; file mode takes the local config's `node`). AMESH_NODE_NAME, else NODE_NAME. */
  nodeName: string;
  /** Mesh trust domain in xDS mode (file mode: the local config's `trustDomain`). */
  trustDomain: string;
  /** Interfaces the capture attaches to in xDS mode (file mode: the local config's `uplinks`); undefined = detect. */
  uplinks: string[] | undefined;
  /** The agent's own pod, for the xDS node id (downward API, as Istio's ztunnel reads them). */
  podName: string;
  podNamespace: string;
  podIp: string;
  /** Concurrent proxied connections per workload and direction (source pod outbound, destination pod inbound). */
  maxConnectionsPerWorkload: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS of the HBONE server: CONNECT streams per HTTP/2 session. */
  hboneMaxConcurrentStreams: number;
  /** CONNECTs waiting in the HBONE pool (dial or answer pending) per destination; beyond: fail fast. */
  hboneMaxPendingConnects: number;
  /** Largest CONNECT header block (HPACK-decoded, RFC 9113 §6.5.2 sizing) the HBONE server takes; beyond: 431. */
  hboneMaxHeaderBytes: number;
  /** Client bytes an outbound tunnel sends before the peer's 200 (hbone/early-data.ts); 0: wait for the 200. */
  hboneEarlyDataBytes: number;
  /** Concurrent CONNECT streams the HBONE pool puts on one connection before dialling another. */
  hbonePoolMaxStreams: number;
  /** How long the HBONE pool keeps a connection with no streams; 0 closes it when its last stream ends. */
  hbonePoolIdleTimeoutMs: number;
}

const invalid = invalidSetting;
const int = intSetting;
const bool = (raw: string, env: string): boolean => {
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  return invalid(env, raw, 'true or false');
};
const oneOf = oneOfSetting;
const str = (raw: string): string => raw;
const hostPort = (raw: string, env: string): string => {
  const m = /^(?:\[([^\]]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(raw.trim());
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) invalid(env, raw, 'host:port (IPv6 as [addr]:port), e.g. istiod.istio-system.svc:15012');
  return raw.trim();
};
const list = (raw: string): string[] => raw.split(',').map((s) => s.trim()).filter(Boolean);
const ip = (raw: string, env: string): string => {
  if (isIP(raw.trim()) === 0) invalid(env, raw, 'an IPv4 or IPv6 address');
  return raw.trim();
};
const trustDomain = (raw: string, env: string): string => {
  if (!isValidTrustDomain(raw.trim())) invalid(env, raw, 'a SPIFFE trust domain (lower-case letters, digits, dots, dashes, underscores)');
  return raw.trim();
};
const handoffSocket = (raw: string, env: string): string => {
  const v = raw.trim();
  if (v === 'auto' || v === 'off') return v;
  if (v.length < 2 || v.length > 107 || !(v.startsWith('@') || v.startsWith('/')) || v.includes('\0')) invalid(env, raw, "'auto', 'off', '@abstract-name' or an absolute path (at most 107 characters)");
  return v;
};
const optionalList = (raw: string): string[] | undefined => {
  const items = list(raw);
  return items.length ? items : undefined;
};

const SETTINGS = {
  logLevel: { env: 'AMESH_LOG_LEVEL', default: 'info', parse: oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const) },
  captureMode: { env: 'AMESH_CAPTURE_MODE', default: 'auto', parse: oneOf(['auto', 'ebpf', 'nftables', 'none'] as const) },
  // Versioned so a future layout change never reads maps of another shape.
  bpfPinRoot: { env: 'AMESH_BPF_PIN_ROOT', default: '', parse: str },
  bpfObjectPath: { env: 'AMESH_BPF_OBJECT', default: undefined, parse: str },
  // 0x111 / 0x539 follow Istio's choices so rules written for Istio keep reading naturally.
  captureMark: { env: 'AMESH_CAPTURE_MARK', default: 0x111, parse: int(1, 0xffffffff) },
  captureMask: { env: 'AMESH_CAPTURE_MASK', default: 0xfff, parse: int(1, 0xffffffff) },
  socketMark: { env: 'AMESH_SOCKET_MARK', default: 0x539, parse: int(1, 0xffffffff) },
  routeTable: { env: 'AMESH_ROUTE_TABLE', default: 133, parse: int(1, 0x7fffffff) },
  routeRulePriority: { env: 'AMESH_ROUTE_RULE_PRIORITY', default: 32000, parse: int(1, 32765) },
  // Fail closed: an enrolled pod must never leak plaintext because the agent is down.
  failOpen: { env: 'AMESH_FAIL_OPEN', default: false, parse: bool },
  listenAddress4: { env: 'AMESH_LISTEN_ADDRESS4', default: '127.0.0.1', parse: str },
  listenAddress6: { env: 'AMESH_LISTEN_ADDRESS6', default: '::1', parse: str },
  outboundPort: { env: 'AMESH_OUTBOUND_PORT', default: 15001, parse: int(0, 65535) },
  inboundPlaintextPort: { env: 'AMESH_INBOUND_PLAINTEXT_PORT', default: 15006, parse: int(0, 65535) },
  hbonePort: { env: 'AMESH_HBONE_PORT', default: 15008, parse: int(0, 65535) },
  adminPort: { env: 'AMESH_ADMIN_PORT', default: 15000, parse: int(0, 65535) },
  metricsPort: { env: 'AMESH_METRICS_PORT', default: 15020, parse: int(0, 65535) },
  readinessPort: { env: 'AMESH_READINESS_PORT', default: 15021, parse: int(0, 65535) },
  // Long enough for a cross-zone handshake, short enough that a blackholed peer frees the client.
  connectTimeoutMs: { env: 'AMESH_CONNECT_TIMEOUT_MS', default: 5000, parse: int(1, 600_000) },
  // Kubernetes' default grace period is 30 s; leave room for the kubelet's own kill.
  // Apps, logs and NetworkPolicies keep seeing the real client, as with Istio ambient.
  preserveSourceIp: { env: 'AMESH_PRESERVE_SOURCE_IP', default: true, parse: bool },
  drainTimeoutMs: { env: 'AMESH_DRAIN_TIMEOUT_MS', default: 20_000, parse: int(0, 3_600_000) },
  handoffSocket: { env: 'AMESH_HANDOFF_SOCKET', default: 'auto', parse: handoffSocket },
  // A DaemonSet replacement pod starts within seconds of the old one being marked deleting.
  successorWaitMs: { env: 'AMESH_SUCCESSOR_WAIT_MS', default: 10_000, parse: int(0, 3_600_000) },
  afterHandoff: { env: 'AMESH_AFTER_HANDOFF', default: 'auto', parse: oneOf(['auto', 'exit', 'wait'] as const) },
  // Istio's default workload certificate lifetime.
  certTtlSeconds: { env: 'AMESH_CERT_TTL_SECONDS', default: 86_400, parse: int(60, 31_536_000) },
  extraExemptCidrs: { env: 'AMESH_EXEMPT_CIDRS', default: [] as string[], parse: list },
  clusterId: { env: 'AMESH_CLUSTER_ID', default: 'Kubernetes', parse: str },
  configPollMs: { env: 'AMESH_CONFIG_POLL_MS', default: 1000, parse: int(50, 600_000) },
  // Unset keeps the self-contained local mode (a CA key in the local config) working.
  caAddress: { env: 'AMESH_CA_ADDRESS', default: '', parse: hostPort },
  // Where Istio mounts the istio-ca-root-cert ConfigMap (key root-cert.pem) for ztunnel.
  caRootCertFile: { env: 'AMESH_CA_ROOT_CERT_FILE', default: '/var/run/secrets/istio/root-cert.pem', parse: str },
  // Istio's projected token path for its agents (audience istio-ca).
  caTokenFile: { env: 'AMESH_CA_TOKEN_FILE', default: '/var/run/secrets/tokens/istio-token', parse: str },
  // Empty: filled with the host of AMESH_CA_ADDRESS below (set it when dialling the CA by IP).
  caServerName: { env: 'AMESH_CA_SERVER_NAME', default: '', parse: str },
  // As fast as the config watcher: a root rotation should reach peers within seconds.
  trustBundlePollMs: { env: 'AMESH_TRUST_BUNDLE_POLL_MS', default: 1000, parse: int(50, 600_000) },
  // Unset keeps the local config file as the source of state (no controller needed).
  xdsAddress: { env: 'AMESH_XDS_ADDRESS', default: '', parse: hostPort },
  // Empty: the CA's server name when xDS and CA share a host (istiod serves both on 15012),
  // else the host of AMESH_XDS_ADDRESS.
  xdsServerName: { env: 'AMESH_XDS_SERVER_NAME', default: '', parse: str },
  // Empty: NODE_NAME (the downward API's spec.nodeName, as the DaemonSet sets it).
  nodeName: { env: 'AMESH_NODE_NAME', default: '', parse: str },
  // Istio's default trust domain.
  trustDomain: { env: 'AMESH_TRUST_DOMAIN', default: 'cluster.local', parse: trustDomain },
  // Unset: the capture detects the node's uplinks itself.
  uplinks: { env: 'AMESH_UPLINKS', default: undefined, parse: optionalList },
  // Istio's names for the downward API values; only the xDS node id uses them.
  podName: { env: 'POD_NAME', default: '', parse: str },
  podNamespace: { env: 'POD_NAMESPACE', default: '', parse: str },
  podIp: { env: 'INSTANCE_IP', default: '', parse: ip },
  // Bounds one pod's share of the agent's sockets (two per proxied connection); above the
  // 10 000 held connections of the soak, below the agent's file-descriptor limit.
  maxConnectionsPerWorkload: { env: 'AMESH_MAX_CONNECTIONS_PER_WORKLOAD', default: 16_384, parse: int(1, 1_000_000) },
  // The HBONE transport profile's value (hbone/settings.ts); pools open another connection beyond it.
  hboneMaxConcurrentStreams: { env: 'AMESH_HBONE_MAX_CONCURRENT_STREAMS', default: 200, parse: int(1, 100_000) },
  // A destination that leaves this many CONNECTs unanswered is not keeping up: failing fast beats
  // queueing sockets and memory for it (Envoy's max_pending_requests default is 1024).
  hboneMaxPendingConnects: { env: 'AMESH_HBONE_MAX_PENDING_CONNECTS', default: 1024, parse: int(1, 1_000_000) },
  // A CONNECT carries :authority, forwarded, baggage and traceparent (well under 1 KiB); 16 KiB
  // leaves room for long baggage and is Node's own default header limit.
  hboneMaxHeaderBytes: { env: 'AMESH_HBONE_MAX_HEADER_BYTES', default: 16_384, parse: int(1024, 1_048_576) },
  // A new connection's first request then travels with its CONNECT instead of a round trip later.
  // 16 KiB (one TLS record) covers a request's head; beyond it the client waits for the 200. It is
  // kept per pending CONNECT for a retry, so the pending limit (1024) bounds it at 16 MiB per
  // destination. 0 turns it off.
  hboneEarlyDataBytes: { env: 'AMESH_HBONE_EARLY_DATA_BYTES', default: 16_384, parse: int(0, 16_777_216) },
  // The default of ztunnel's POOL_MAX_STREAMS_PER_CONNECTION (which counts a connection's streams
  // over its life; this counts open ones): a busy destination gets a few connections, not one per stream.
  hbonePoolMaxStreams: { env: 'AMESH_HBONE_POOL_MAX_STREAMS', default: 100, parse: int(1, 100_000) },
  // Pooled connections are what saves a handshake per new connection; 5 min keeps them across
  // lulls (ztunnel's POOL_UNUSED_RELEASE_TIMEOUT). 0 with a maximum of 1 stream makes every
  // connection pay a full mTLS handshake, as a proxy pair does (the bench's handshake scenario).
  hbonePoolIdleTimeoutMs: { env: 'AMESH_HBONE_POOL_IDLE_TIMEOUT_MS', default: 300_000, parse: int(0, 86_400_000) },
} satisfies { [K in keyof AgentConfig]: Setting<AgentConfig[K]> };

export function agentSettings(): ReadonlyArray<{ key: string; env: string; default: unknown }> {
  return Object.entries(SETTINGS).map(([key, s]) => ({ key, env: s.env, default: s.default }));
}

const hostOf = (address: string): string => address.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');

/**
 * Read the agent config from `env`. `node` is the local config's node name in file mode (it
 * fills node-dependent defaults); in xDS mode the node comes from AMESH_NODE_NAME / NODE_NAME.
 */
export function readAgentConfig(env: NodeJS.ProcessEnv, node?: string): Readonly<AgentConfig> {
  const cfg = readSettings<AgentConfig>(SETTINGS, env);
  cfg.nodeName = (cfg.nodeName || env.NODE_NAME || node || '').trim();
  const pinNode = node ?? cfg.nodeName;
  if (!cfg.bpfPinRoot) cfg.bpfPinRoot = `/sys/fs/bpf/amesh/v1/${pinNode}`;
  if (!cfg.caServerName && cfg.caAddress) cfg.caServerName = hostOf(cfg.caAddress);
  if (cfg.xdsAddress) {
    if (!cfg.xdsServerName) cfg.xdsServerName = cfg.caAddress && hostOf(cfg.caAddress) === hostOf(cfg.xdsAddress) ? cfg.caServerName : hostOf(cfg.xdsAddress);
    if (!cfg.nodeName) {
      throw new AmeshError('AMESH_CONFIG_INVALID', 'AMESH_XDS_ADDRESS is set but the node name is not: set NODE_NAME or AMESH_NODE_NAME', {
        hint: 'the DaemonSet passes spec.nodeName as NODE_NAME through the downward API',
      });
    }
    if (!cfg.caAddress) {
      throw new AmeshError('AMESH_CONFIG_INVALID', 'AMESH_XDS_ADDRESS is set but AMESH_CA_ADDRESS is not: in xDS mode workload certificates come from the mesh CA', {
        hint: 'set AMESH_CA_ADDRESS (usually the same istiod/controller address, port 15012)',
      });
    }
  }
  if ((cfg.captureMark & cfg.captureMask) === (cfg.socketMark & cfg.captureMask)) {
    throw new AmeshError('AMESH_CONFIG_INVALID', 'AMESH_CAPTURE_MARK and AMESH_SOCKET_MARK must differ under AMESH_CAPTURE_MASK', {
      hint: 'otherwise the agent’s own outbound packets would be routed back to itself',
    });
  }
  return Object.freeze(cfg);
}

