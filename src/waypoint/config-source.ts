/**
 * The waypoint's configuration over delta ADS (DESIGN §6): one DeltaXdsClient subscribed to
 * WAYPOINT_CONFIG_TYPE_URL by the explicit name `<namespace>/<gateway>` (not wildcard: a waypoint
 * may only see its own routes), with the waypoint's token and TLS against the mesh roots, as
 * the node agent connects.
 *
 * Guarantees:
 * - Each response is decoded and validated (`decode`, the codec's zod schema) and then applied
 *   (`apply`, which compiles routes and may refuse too); any failure NACKs that resource with
 *   the reason, and the waypoint keeps the last good config.
 * - The resource being removed (the Gateway deleted) is logged; the last config keeps being
 *   served until the waypoint itself is deleted.
 * - While disconnected the last good config is served; the client reconnects with backoff.
 * - Responses are applied one at a time, in order; the ACK goes out after `apply` returned.
 */
import * as grpc from '@grpc/grpc-js';
import { describeError } from '../errors/amesh-error.js';
import { splitHostPort } from '../identity/ca-client.js';
import { WAYPOINT_CONFIG_TYPE_URL, type WaypointConfig } from '../l7/config.js';
import { AmeshError } from '../errors/amesh-error.js';
import type { CertificateSource } from '../l7/mesh-upstream.js';
import type { ProxySettings } from '../l7/proxy-settings.js';
import type { XdsCredentials } from '../node-agent/xds/xds-state-source.js';
import { bearerTokenMetadata, meshTlsCredentials } from '../node-agent/xds/xds-credentials.js';
import type { Logger } from '../telemetry/logger.js';
import { DeltaXdsClient, type DeltaClientOptions, type DeltaClientStatus, type DeltaUpdate } from '../xds/delta-client.js';
import { decodeWaypointConfig } from '../xds/waypoint-codec.js';

export interface WaypointXdsNode {
  podName: string;
  podNamespace: string;
  podIp: string;
  nodeName: string;
  clusterId: string;
}

export interface WaypointConfigSourceOptions {
  address: string;
  credentials: XdsCredentials;
  /** `<namespace>/<gateway name>`. */
  resourceName: string;
  node: WaypointXdsNode;
  decode: (bytes: Uint8Array) => WaypointConfig;
  /** Apply a decoded config; throw to refuse it (NACK with the message). */
  apply: (config: WaypointConfig, version: string) => void;
  logger: Logger;
  backoff?: DeltaClientOptions['backoff'];
}

export interface WaypointConfigSourceStatus {
  address: string;
  resourceName: string;
  connected: boolean;
  disconnects: number;
  updates: number;
  /** The version of the applied config. */
  version?: string;
  lastError?: string;
  lastNack?: { reason: string; at: string };
  removedAt?: string;
  client: DeltaClientStatus;
}

/** Istio's waypoint (Envoy "router") node id: `router~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`. */
export function waypointNodeId(n: WaypointXdsNode): string {
  return `router~${n.podIp || '0.0.0.0'}~${n.podName || 'waypoint'}.${n.podNamespace}~${n.podNamespace}.svc.cluster.local`;
}

export class WaypointConfigSource {
  private readonly client: DeltaXdsClient;
  private connected = false;
  private disconnects = 0;
  private updates = 0;
  private version: string | undefined;
  private lastError: string | undefined;
  private lastNack: { reason: string; at: string } | undefined;
  private removedAt: string | undefined;

  constructor(private readonly opts: WaypointConfigSourceOptions) {
    const credentials = opts.credentials;
    const tls = credentials.kind === 'mesh-tls';
    const host = splitHostPort(opts.address)?.host ?? opts.address;
    this.client = new DeltaXdsClient({
      address: opts.address,
      credentials: tls ? meshTlsCredentials(credentials.roots) : grpc.credentials.createInsecure(),
      ...(tls ? { callCredentials: () => bearerTokenMetadata(credentials.tokenFile) } : {}),
      // Override only when it differs: an IP as TLS name would go out as SNI.
      ...(tls && credentials.serverName && credentials.serverName !== host
        ? { channelOptions: { 'grpc.ssl_target_name_override': credentials.serverName, 'grpc.default_authority': credentials.serverName } }
        : {}),
      node: {
        id: waypointNodeId(opts.node),
        cluster: opts.node.clusterId,
        metadata: {
          NAMESPACE: opts.node.podNamespace,
          CLUSTER_ID: opts.node.clusterId,
          ...(opts.node.nodeName ? { NODE_NAME: opts.node.nodeName } : {}),
          ...(opts.node.podName ? { NAME: opts.node.podName } : {}),
          ...(opts.node.podIp ? { INSTANCE_IPS: opts.node.podIp } : {}),
        },
      },
      typeUrls: [WAYPOINT_CONFIG_TYPE_URL],
      resourceNames: { [WAYPOINT_CONFIG_TYPE_URL]: [opts.resourceName] },
      onUpdate: (update) => this.onUpdate(update),
      onConnectionChange: (connected, error) => this.onConnectionChange(connected, error),
      logger: opts.logger,
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
    });
  }

  start(): void {
    this.client.start();
  }

  close(): Promise<void> {
    return this.client.close();
  }

  status(): WaypointConfigSourceStatus {
    return {
      address: this.opts.address,
      resourceName: this.opts.resourceName,
      connected: this.connected,
      disconnects: this.disconnects,
      updates: this.updates,
      ...(this.version !== undefined ? { version: this.version } : {}),
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {}),
      ...(this.lastNack ? { lastNack: this.lastNack } : {}),
      ...(this.removedAt ? { removedAt: this.removedAt } : {}),
      client: this.client.status(),
    };
  }

  private async onUpdate(update: DeltaUpdate): Promise<ReadonlyMap<string, string>> {
    const { logger, resourceName } = this.opts;
    const rejected = new Map<string, string>();
    if (update.typeUrl !== WAYPOINT_CONFIG_TYPE_URL) return rejected;
    this.updates++;
    for (const r of update.resources) {
      if (r.name !== resourceName) {
        rejected.set(r.name, `this waypoint subscribed to ${resourceName} only`);
        continue;
      }
      try {
        const config = this.opts.decode(r.resource);
        this.opts.apply(config, r.version);
        this.version = r.version;
        this.removedAt = undefined;
      } catch (err) {
        const reason = describeError(err).split('\n')[0] ?? 'rejected';
        rejected.set(r.name, reason);
        this.lastNack = { reason, at: new Date().toISOString() };
        logger.warn({ resource: r.name, version: r.version, reason }, 'waypoint config rejected (NACK); keeping the last good config');
      }
    }
    if (update.removed.includes(resourceName)) {
      this.removedAt = new Date().toISOString();
      logger.warn({ resource: resourceName }, 'the controller no longer serves this waypoint’s config; keeping the last good config');
    }
    return rejected;
  }

  private onConnectionChange(connected: boolean, error?: unknown): void {
    if (this.connected && !connected) this.disconnects++;
    this.connected = connected;
    if (error !== undefined) this.lastError = describeError(error).split('\n')[0];
    if (connected) this.opts.logger.info({ address: this.opts.address }, 'xds: connected');
    else this.opts.logger.warn({ address: this.opts.address, err: this.lastError }, 'xds: disconnected; serving the last good config while reconnecting');
  }
}

export interface ProxyConfigSourceOptions {
  settings: Readonly<ProxySettings>;
  /** `waypoint` / `gateway`, for messages. */
  role: string;
  resourceName: string;
  certificateSource: CertificateSource;
  /** Tests: instead of mesh TLS against the roots with the proxy's token. */
  credentials?: XdsCredentials;
  apply: (config: WaypointConfig, version: string) => void;
  logger: Logger;
}

/** The config source of a proxy process (waypoint or gateway) from its settings: mesh TLS + token unless a test says otherwise. */
export function openProxyConfigSource(o: ProxyConfigSourceOptions): WaypointConfigSource {
  const s = o.settings;
  let credentials = o.credentials;
  if (!credentials) {
    if (!o.certificateSource.trustBundle) throw new AmeshError('AMESH_CONFIG_INVALID', 'xDS needs the mesh roots to verify the server: set AMESH_CA_ADDRESS and AMESH_CA_ROOT_CERT_FILE');
    credentials = { kind: 'mesh-tls', roots: o.certificateSource.trustBundle, serverName: s.xdsServerName, tokenFile: s.caTokenFile };
  }
  if (!s.xdsAddress) throw new AmeshError('AMESH_CONFIG_INVALID', 'AMESH_XDS_ADDRESS is not set', { hint: `the ${o.role}’s routes come from the controller over xDS` });
  return new WaypointConfigSource({
    address: s.xdsAddress,
    credentials,
    resourceName: o.resourceName,
    node: { podName: s.podName, podNamespace: s.podNamespace, podIp: s.podIp, nodeName: s.nodeName, clusterId: s.clusterId },
    decode: decodeWaypointConfig,
    apply: o.apply,
    logger: o.logger.child({ component: 'xds' }),
  });
}
