/**
 * The node agent's state from the controller (or istiod) over delta ADS (DESIGN §6): both
 * workload-API types on one DeltaXdsClient, every resource checked (xds-resources.ts), the last
 * good resources kept per type, and a MeshSnapshot handed to the agent after each response.
 *
 * Guarantees:
 * - Invalid resources are NACKed by name with the reason; the rest of the response is applied.
 * - `apply` (given to `start`) is first called once a response of BOTH types has been applied — never a state
 *   with workloads but without their policies — and after every response from then on.
 * - A response is ACKed only after `apply` resolved, i.e. after the agent applied the state
 *   including capture: the controller takes the ACK as "this node redirects the pod now"
 *   (`ambient.istio.io/redirection: enabled`). If applying fails, the response's resources are
 *   NACKed with the error, so the controller does not claim what is not in place.
 * - `ready` once the first full state was applied successfully, and it stays: while disconnected the agent keeps
 *   serving the last good state (`connected: false` in status), and the client reconnects
 *   with backoff (10 ms → 15 s) by itself.
 * - Responses are handled one at a time, in order.
 * - With `telemetry`, Telemetry resources (TELEMETRY_TYPE_URL) are checked and NACKed the same way
 *   and kept apart (`telemetry()`: the last good per namespace; removals apply); they never hold
 *   back readiness and never cause a state swap.
 */
import * as grpc from '@grpc/grpc-js';
import { describeError } from '../../errors/amesh-error.js';
import type { Logger } from '../../telemetry/logger.js';
import { TELEMETRY_TYPE_URL, type NamespaceTelemetry } from '../../telemetry/telemetry-config.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL, type DecodedAddress } from '../../xds/codec.js';
import { DeltaXdsClient, type DeltaClientOptions, type DeltaClientStatus, type DeltaUpdate } from '../../xds/delta-client.js';
import type { StateSource } from '../state/state-source.js';
import type { Authorization, MeshSnapshot } from '../state/types.js';
import { splitHostPort } from '../../identity/ca-client.js';
import { bearerTokenMetadata, meshTlsCredentials, type RootSource } from './xds-credentials.js';
import { addressGuard, applyUpdate, buildSnapshot, checkAddressResource, checkAuthorizationResource, checkTelemetryResource } from './xds-resources.js';

/** The types the mesh state is built from: ready once both arrived. */
export const XDS_TYPE_URLS: readonly string[] = [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL];

/** What the client hands over per response. */
export type XdsUpdate = DeltaUpdate;

/** The agent's own identity for the xDS Node message. */
export interface XdsNodeIdentity {
  nodeName: string;
  podName: string;
  podNamespace: string;
  podIp: string;
  clusterId: string;
}

export type XdsCredentials =
  /** Production: TLS against the mesh roots, bearer token per stream. */
  | { kind: 'mesh-tls'; roots: RootSource; serverName: string; tokenFile: string }
  /** Tests only: plaintext, no token. */
  | { kind: 'insecure' };

export interface XdsStateSourceOptions {
  address: string;
  credentials: XdsCredentials;
  node: XdsNodeIdentity;
  trustDomain: string;
  /** Interfaces the capture attaches to; undefined = detect. */
  uplinks?: string[] | undefined;
  logger: Logger;
  backoff?: DeltaClientOptions['backoff'];
  /**
   * Also subscribe to TELEMETRY_TYPE_URL (the agent does). Telemetry is optional: readiness never
   * waits for it (a server that does not serve it — istiod — just never answers the type).
   */
  telemetry?: boolean;
  /** Injected for tests; default a DeltaXdsClient. */
  createClient?: (options: DeltaClientOptions) => XdsClient;
}

/** The part of DeltaXdsClient the source uses (tests inject a fake). */
export interface XdsClient {
  start(): void;
  close(): Promise<void>;
  status(): DeltaClientStatus;
}

export interface XdsNack {
  typeUrl: string;
  /** name → reason */
  rejected: Record<string, string>;
  at: string;
}

export interface XdsStatus {
  kind: 'xds';
  address: string;
  ready: boolean;
  connected: boolean;
  /** Streams lost after having been connected; the client reconnects by itself. */
  disconnects: number;
  /** Stream attempts that failed or ended (the client's count). */
  reconnects: number;
  lastError?: string;
  resources: { workloads: number; services: number; authorizations: number; telemetry?: number };
  updates: number;
  lastUpdateAt?: string;
  lastNack?: XdsNack;
  /** Per type: resources the client holds (accepted), last nonce, last NACK message. */
  types: DeltaClientStatus['types'];
}

/** Istio's ztunnel node id: `ztunnel~<pod IP>~<pod>.<namespace>~<namespace>.svc.cluster.local`. */
export function xdsNodeId(n: XdsNodeIdentity): string {
  const namespace = n.podNamespace || 'amesh-system';
  const pod = n.podName || `amesh-node-${n.nodeName}`;
  return `ztunnel~${n.podIp || '0.0.0.0'}~${pod}.${namespace}~${namespace}.svc.cluster.local`;
}

/** Node metadata as ztunnel sends it (istiod reads NODE_NAME, NAMESPACE, CLUSTER_ID). */
export function xdsNodeMetadata(n: XdsNodeIdentity): Record<string, string> {
  return { NODE_NAME: n.nodeName, NAMESPACE: n.podNamespace || 'amesh-system', CLUSTER_ID: n.clusterId, ...(n.podName ? { NAME: n.podName } : {}), ...(n.podIp ? { INSTANCE_IPS: n.podIp } : {}) };
}

/**
 * HTTP/2 PINGs on the xDS channel every 10 s, answered within 5 s: a connection that died without
 * its end reaching us (a socket killed under it, a NAT or firewall dropping state) is noticed and
 * the stream reopened. Without them an agent whose connection was killed mid-push stayed
 * "connected" to a stream the controller had already closed, and kept a stale state for over a
 * minute (test/privileged/sandbox-faults-net.test.ts, the xDS case).
 */
export const XDS_KEEPALIVE = Object.freeze({ 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000, 'grpc.keepalive_permit_without_calls': 1 });

export class XdsStateSource implements StateSource {
  readonly kind = 'xds' as const;
  readonly initialIsComplete = false;
  private onState: ((snapshot: MeshSnapshot) => Promise<void>) | undefined;
  private addresses: ReadonlyMap<string, DecodedAddress> = new Map();
  private authorizations: ReadonlyMap<string, Authorization> = new Map();
  /** Replaced (never mutated) on every change, so its values can key caches. */
  private telemetries: ReadonlyMap<string, NamespaceTelemetry> = new Map();
  private readonly received = new Set<string>();
  /** typeUrl → name → version of every resource held (Address, Authorization): `/config_dump`'s `xdsVersions`. */
  private readonly versions = new Map<string, Map<string, string>>();
  private readonly client: XdsClient;
  private chain: Promise<unknown> = Promise.resolve();
  private ready = false;
  private connected = false;
  private disconnects = 0;
  private updates = 0;
  private lastError: string | undefined;
  private lastUpdateAt: string | undefined;
  private lastNack: XdsNack | undefined;
  private readyWaiters: Array<() => void> = [];
  private closed = false;

  constructor(private readonly opts: XdsStateSourceOptions) {
    const credentials = opts.credentials;
    const host = splitHostPort(opts.address)?.host ?? opts.address;
    const tls = credentials.kind === 'mesh-tls';
    const clientOptions: DeltaClientOptions = {
      address: opts.address,
      credentials: tls ? meshTlsCredentials(credentials.roots) : grpc.credentials.createInsecure(),
      ...(tls ? { callCredentials: () => bearerTokenMetadata(credentials.tokenFile) } : {}),
      channelOptions: {
        ...XDS_KEEPALIVE,
        // As the CA client: override only when it differs — an IP as TLS name would go out as SNI.
        ...(tls && credentials.serverName && credentials.serverName !== host ? { 'grpc.ssl_target_name_override': credentials.serverName, 'grpc.default_authority': credentials.serverName } : {}),
      },
      node: { id: xdsNodeId(opts.node), cluster: opts.node.clusterId, metadata: xdsNodeMetadata(opts.node) },
      typeUrls: opts.telemetry ? [...XDS_TYPE_URLS, TELEMETRY_TYPE_URL] : [...XDS_TYPE_URLS],
      onUpdate: (update) => this.handleUpdate(update),
      onConnectionChange: (connected, error) => this.onConnectionChange(connected, error),
      logger: opts.logger,
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
    };
    this.client = (opts.createClient ?? ((o) => new DeltaXdsClient(o)))(clientOptions);
  }

  get node(): string {
    return this.opts.node.nodeName;
  }

  get trustDomain(): string {
    return this.opts.trustDomain;
  }

  get uplinks(): string[] | undefined {
    return this.opts.uplinks;
  }

  /** Nothing yet: the first state arrives over the stream. */
  initial(): MeshSnapshot {
    return this.snapshot();
  }

  /** Connects; `apply` gets every new state and the response is ACKed once it resolved. */
  start(apply: (snapshot: MeshSnapshot) => Promise<void>): void {
    this.onState = apply;
    this.client.start();
  }

  /** True once a full state (both types) has been applied; stays true while disconnected. */
  isReady(): boolean {
    return this.ready;
  }

  /** Resolves at the first full state (or never, if the source is closed first). */
  whenReady(): Promise<void> {
    return this.ready ? Promise.resolve() : new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** The current resources as a snapshot (empty before the first response). */
  snapshot(): MeshSnapshot {
    return buildSnapshot(this.opts.trustDomain, this.addresses, this.authorizations);
  }

  /** The last good Telemetry per namespace (empty until the controller sent some). */
  telemetry(): ReadonlyMap<string, NamespaceTelemetry> {
    return this.telemetries;
  }

  status(): XdsStatus & Record<string, unknown> {
    const client = this.client.status();
    let workloads = 0;
    for (const a of this.addresses.values()) if (a.kind === 'workload') workloads++;
    return {
      kind: this.kind,
      address: this.opts.address,
      ready: this.ready,
      connected: this.connected,
      disconnects: this.disconnects,
      reconnects: client.reconnects,
      ...(this.lastError ? { lastError: this.lastError } : {}),
      resources: { workloads, services: this.addresses.size - workloads, authorizations: this.authorizations.size, ...(this.opts.telemetry ? { telemetry: this.telemetries.size } : {}) },
      updates: this.updates,
      ...(this.lastUpdateAt ? { lastUpdateAt: this.lastUpdateAt } : {}),
      ...(this.lastNack ? { lastNack: this.lastNack } : {}),
      types: client.types,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client.close();
  }

  /**
   * The client's onUpdate: check, apply, hand the state over, then answer with the names to
   * NACK. Serialized, so responses apply in arrival order even if the client overlapped them.
   */
  handleUpdate(update: XdsUpdate): Promise<ReadonlyMap<string, string>> {
    const run = (): Promise<ReadonlyMap<string, string>> => this.apply(update);
    const result = this.chain.then(run, run);
    this.chain = result.catch(() => undefined);
    return result;
  }

  private async apply(update: XdsUpdate): Promise<ReadonlyMap<string, string>> {
    const { logger, trustDomain } = this.opts;
    let rejected: Map<string, string>;
    let changed: string[];
    if (update.typeUrl === ADDRESS_TYPE_URL) {
      const upserts = update.resources.map((r) => ({ name: r.name, checked: checkAddressResource(r.name, r.resource, trustDomain) }));
      const applied = applyUpdate(this.addresses, upserts, update.removed, addressGuard);
      this.addresses = applied.next;
      ({ rejected, changed } = applied);
    } else if (update.typeUrl === AUTHORIZATION_TYPE_URL) {
      const upserts = update.resources.map((r) => ({ name: r.name, checked: checkAuthorizationResource(r.name, r.resource) }));
      const applied = applyUpdate(this.authorizations, upserts, update.removed);
      this.authorizations = applied.next;
      ({ rejected, changed } = applied);
    } else if (update.typeUrl === TELEMETRY_TYPE_URL && this.opts.telemetry) {
      return this.applyTelemetry(update);
    } else {
      rejected = new Map(update.resources.map((r) => [r.name, `type ${update.typeUrl} is not served by this node agent`]));
      changed = [];
    }
    this.updates++;
    this.lastUpdateAt = new Date().toISOString();
    this.received.add(update.typeUrl);
    const fullState = XDS_TYPE_URLS.every((t) => this.received.has(t));
    logger.info(
      { typeUrl: update.typeUrl, upserted: update.resources.length, removed: update.removed.length, changed: changed.length, rejected: rejected.size, initial: update.initial, fullState },
      'xds: response applied',
    );

    if (fullState && (changed.length > 0 || !this.ready)) {
      let applied = true;
      try {
        await this.onState?.(this.snapshot());
      } catch (err) {
        applied = false;
        // The state is served but not fully in place (e.g. capture failed): NACK what this
        // response brought so the controller does not mark its pods as redirected.
        const reason = `applying the state failed: ${describeError(err).split('\n')[0]}`;
        logger.error({ err: describeError(err), typeUrl: update.typeUrl }, 'xds: applying the new state failed; NACKing the response');
        for (const r of update.resources) if (!rejected.has(r.name)) rejected.set(r.name, reason);
      }
      if (applied && !this.ready && !this.closed) {
        this.ready = true;
        logger.info(this.status().resources, 'xds: first full state applied; ready');
        for (const resolve of this.readyWaiters.splice(0)) resolve();
      }
    }
    this.recordVersions(update, rejected);
    if (rejected.size > 0) {
      this.lastNack = { typeUrl: update.typeUrl, rejected: Object.fromEntries(rejected), at: new Date().toISOString() };
      logger.warn({ typeUrl: update.typeUrl, rejected: this.lastNack.rejected }, 'xds: resources rejected (NACK)');
    }
    return rejected;
  }

  /** What the controller's versions are compared with (a rejected resource keeps the version held before). */
  private recordVersions(update: XdsUpdate, rejected: ReadonlyMap<string, string>): void {
    if (update.typeUrl !== ADDRESS_TYPE_URL && update.typeUrl !== AUTHORIZATION_TYPE_URL) return;
    let held = this.versions.get(update.typeUrl);
    if (!held) this.versions.set(update.typeUrl, (held = new Map()));
    for (const name of update.removed) held.delete(name);
    for (const r of update.resources) if (!rejected.has(r.name)) held.set(r.name, r.version);
  }

  /** typeUrl → name → version of the resources held, sorted by name (the controller's `/debug/xds` `resources` is the same shape). */
  resourceVersions(): Record<string, Record<string, string>> {
    const out: Record<string, Record<string, string>> = {};
    for (const [typeUrl, held] of this.versions) out[typeUrl] = Object.fromEntries([...held].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return out;
  }

  /** Telemetry: kept apart from the mesh snapshot (no state swap, no capture), used from the next connection on. */
  private applyTelemetry(update: XdsUpdate): ReadonlyMap<string, string> {
    const upserts = update.resources.map((r) => ({ name: r.name, checked: checkTelemetryResource(r.name, r.resource) }));
    const { next, rejected, changed } = applyUpdate(this.telemetries, upserts, update.removed);
    if (changed.length > 0) this.telemetries = next;
    this.updates++;
    this.lastUpdateAt = new Date().toISOString();
    this.received.add(update.typeUrl);
    this.opts.logger.info({ typeUrl: update.typeUrl, upserted: update.resources.length, removed: update.removed.length, changed: changed.length, rejected: rejected.size, namespaces: [...this.telemetries.keys()] }, 'xds: telemetry applied');
    if (rejected.size > 0) {
      this.lastNack = { typeUrl: update.typeUrl, rejected: Object.fromEntries(rejected), at: new Date().toISOString() };
      this.opts.logger.warn({ typeUrl: update.typeUrl, rejected: this.lastNack.rejected }, 'xds: resources rejected (NACK)');
    }
    return rejected;
  }

  private onConnectionChange(connected: boolean, error?: unknown): void {
    if (this.connected && !connected) this.disconnects++;
    this.connected = connected;
    if (error !== undefined) this.lastError = describeError(error).split('\n')[0];
    if (!connected) this.opts.logger.warn({ address: this.opts.address, err: this.lastError, ready: this.ready }, 'xds: disconnected; serving the last good state while reconnecting');
    else this.opts.logger.info({ address: this.opts.address }, 'xds: connected');
  }
}
