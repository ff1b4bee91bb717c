/**
 * The controller's delta ADS server (DESIGN §6): `envoy.service.discovery.v3.
 * AggregatedDiscoveryService/DeltaAggregatedResources`, serving the ResourceStore's types to node
 * agents (ours and Istio's ztunnel). Register it on the CA's gRPC server (port 15012, as istiod)
 * with `addAdsService`.
 *
 * Contract, per stream:
 * - The caller is authenticated before any request is read (`AdsAuthenticator`; by default a
 *   trusted node agent's reviewed token). Refusals end the stream UNAUTHENTICATED /
 *   PERMISSION_DENIED / UNAVAILABLE with the reason, and log one warn line.
 * - The first request of a type subscribes it: no names or `*` = wildcard, names = a filter.
 *   `initial_resource_versions` is what the client already holds: only resources whose version
 *   differs are sent, and names it holds that no longer exist come back as `removed_resources`.
 *   The first response of a type is sent even when empty, so the client knows it is in sync.
 * - Every response has a fresh nonce. A request carrying `response_nonce` without `error_detail`
 *   ACKs it (its versions become the node's acked versions); with `error_detail` it NACKs it:
 *   logged (warn: node, message), recorded, and the rejected versions are not sent again — only
 *   a newer version is. Resources of a NACKed response not named in the message were applied.
 * - Store changes are debounced server-wide (`debounceMs`, default 50 ms, but never held longer
 *   than `maxDelayMs`, default 1 s, so a constant stream of changes still pushes): a burst is one
 *   push per stream and type.
 * - Flow control: a response is not followed by another of its type until the client has ACKed
 *   or NACKed it (every xDS client answers every response), and at most one response per stream
 *   is being written. Meanwhile changes only mark the type dirty; the next push is computed from
 *   the store's state when it goes out. A slow client never builds a queue of stale pushes. (The
 *   ACK, not grpc-js' write callback, is the signal: the callback fires once HTTP/2 has buffered
 *   the data, whether or not the peer reads it.)
 * - Sync state (`connections()`, the controller's /debug/syncz): per stream its caller, role
 *   (node-agent / waypoint / gateway, from the authenticator), pod (node metadata NAME/NAMESPACE,
 *   else the `<type>~<ip>~<pod>.<ns>~…` node id), and per type the last response sent (nonce,
 *   resources in it), the last ACKed nonce and the last NACK; a type is SYNCED when every response
 *   sent is answered and nothing waits to be pushed, STALE while something does, NACKED from a
 *   NACK until the next ACK. `push` events (type URL, resources, removed) feed the push counter.
 */
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { describeError } from '../../errors/amesh-error.js';
import type { Logger } from '../../telemetry/logger.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../../xds/codec.js';
import { adsServiceDefinition, structStrings, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse, type ResourceMessage } from '../../xds/delta-messages.js';
import type { AdsAuthenticator, AdsRole, AdsScope } from './ads-auth.js';
import { planPush, rejectedNames } from './delta-plan.js';
import type { ResourceStore } from './resource-store.js';

/** Istio's node metadata key for the Kubernetes node an agent runs on. */
export const NODE_NAME_METADATA = 'NODE_NAME';
export const DEFAULT_DEBOUNCE_MS = 50;
export const DEFAULT_MAX_DELAY_MS = 1_000;
/** Responses remembered per type awaiting an ACK; older ones are forgotten (their ACK is ignored). */
const MAX_OUTSTANDING = 64;

export interface AdsServerOptions {
  store: ResourceStore;
  authenticate: AdsAuthenticator;
  log: Logger;
  /** Types served; default Address and Authorization. */
  typeUrls?: readonly string[];
  debounceMs?: number;
  maxDelayMs?: number;
  /** Injected for tests; default Date.now. */
  now?: () => number;
}

export interface AdsNack {
  message: string;
  at: Date;
  nonce: string;
}

/** SYNCED: everything sent was answered; STALE: a response or a change awaits; NACKED: the last answer was a NACK. */
export type AdsSyncState = 'SYNCED' | 'STALE' | 'NACKED';

export interface AdsTypeStatus {
  /** The last response sent: its nonce, when, and how many resources (upserts + removals) it carried. */
  sentNonce?: string;
  sentAt?: Date;
  sentResources?: number;
  ackedNonce?: string;
  lastNack?: AdsNack;
  /** Set by a NACK, cleared by the next ACK. */
  nacked?: AdsNack;
  sync: AdsSyncState;
  /** A response is unacknowledged or a change is waiting to be pushed. */
  pending: boolean;
  responses: number;
  nacks: number;
  /** Resources the client holds, as far as the server knows. */
  resources: number;
}

export interface AdsConnection {
  id: number;
  /** The Node's id. */
  node: string;
  /** NODE_NAME metadata: the Kubernetes node. */
  nodeName?: string;
  /** `<namespace>/<serviceAccount>` of the authenticated caller. */
  caller: string;
  role: AdsRole;
  /** `<namespace>/<name>` of the proxy's pod, when its node metadata or id tells. */
  pod?: string;
  peer: string;
  connectedAt: Date;
  typeUrls: Record<string, AdsTypeStatus>;
}

/** After an ACK or NACK: every version the node's agent has accepted for the type. */
export type AckListener = (nodeName: string, typeUrl: string, ackedVersions: ReadonlyMap<string, string>) => void;
export type NackListener = (nodeName: string, typeUrl: string, nack: AdsNack) => void;
export type DisconnectListener = (nodeName: string) => void;
export type PushListener = (typeUrl: string, resources: number, removed: number) => void;

interface Outstanding {
  versions: Map<string, string>;
  removed: string[];
}

interface Subscription {
  wildcard: boolean;
  names: Set<string>;
  /** name → version the client holds (initial versions, then everything sent). */
  held: Map<string, string>;
  acked: Map<string, string>;
  outstanding: Map<string, Outstanding>;
  /** The nonce of the last response, until the client answers it. */
  awaiting: string | undefined;
  dirty: boolean;
  /** The first response has not been sent yet (it goes out even when empty). */
  first: boolean;
  status: AdsTypeStatus;
}

type Call = grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

export class AdsServer extends EventEmitter {
  readonly definition: grpc.ServiceDefinition = adsServiceDefinition();
  readonly implementation: grpc.UntypedServiceImplementation;
  private readonly log: Logger;
  private readonly typeUrls: readonly string[];
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly now: () => number;
  private readonly streams = new Set<AdsStream>();
  private readonly changedTypes = new Set<string>();
  private readonly unsubscribe: () => void;
  private timer: NodeJS.Timeout | undefined;
  private firstChangeAt: number | undefined;
  private nextId = 1;
  private closed = false;

  constructor(private readonly opts: AdsServerOptions) {
    super();
    this.log = opts.log.child({ component: 'ads-server' });
    this.typeUrls = opts.typeUrls ?? [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL];
    this.debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.maxDelayMs = Math.max(opts.maxDelayMs ?? DEFAULT_MAX_DELAY_MS, this.debounceMs);
    this.now = opts.now ?? Date.now;
    this.implementation = { DeltaAggregatedResources: (call: Call) => this.accept(call) };
    this.unsubscribe = opts.store.onChange((change) => this.storeChanged(change.typeUrl));
  }

  override on(event: 'ack', listener: AckListener): this;
  override on(event: 'nack', listener: NackListener): this;
  override on(event: 'disconnect', listener: DisconnectListener): this;
  override on(event: 'push', listener: PushListener): this;
  override on(event: string, listener: AckListener | NackListener | DisconnectListener | PushListener): this {
    return super.on(event, listener as Parameters<EventEmitter['on']>[1]);
  }

  connections(): AdsConnection[] {
    return [...this.streams].filter((s) => s.node !== undefined).map((s) => s.info());
  }

  /**
   * The version of `name` the node agent on `nodeName` (its latest stream) has ACKed. Only
   * node-agent streams count: a waypoint or gateway pod sends its node's NODE_NAME too, and its
   * stream (newer, without Address resources) must not hide what the agent holds.
   */
  ackedVersion(nodeName: string, typeUrl: string, name: string): string | undefined {
    let latest: AdsStream | undefined;
    for (const s of this.streams) if (s.nodeName === nodeName && s.role === 'node-agent' && (!latest || s.connectedAt >= latest.connectedAt)) latest = s;
    return latest?.acked(typeUrl)?.get(name);
  }

  /** Ends every stream (UNAVAILABLE: clients reconnect elsewhere or later) and stops listening to the store. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.unsubscribe();
    for (const s of [...this.streams]) s.end(grpc.status.UNAVAILABLE, 'the controller is shutting down');
  }

  private storeChanged(typeUrl: string): void {
    if (this.closed || !this.typeUrls.includes(typeUrl)) return;
    this.changedTypes.add(typeUrl);
    const now = this.now();
    this.firstChangeAt ??= now;
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstChangeAt + this.maxDelayMs - now));
    this.timer = setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.timer = undefined;
    this.firstChangeAt = undefined;
    const types = [...this.changedTypes];
    this.changedTypes.clear();
    for (const s of this.streams) s.changed(types);
  }

  private accept(call: Call): void {
    const stream = new AdsStream(this.nextId++, call, {
      store: this.opts.store,
      typeUrls: this.typeUrls,
      log: this.log,
      now: this.now,
      emit: (event, ...args) => this.emit(event, ...args),
      listening: (event) => this.listenerCount(event) > 0,
      closed: () => this.streams.delete(stream),
    });
    if (this.closed) {
      stream.end(grpc.status.UNAVAILABLE, 'the controller is shutting down');
      return;
    }
    this.streams.add(stream);
    this.opts
      .authenticate(call.metadata)
      .catch((err: unknown) => {
        this.log.error({ err: describeError(err), peer: stream.peer }, 'unexpected failure authenticating an ADS stream');
        return { ok: false as const, code: grpc.status.INTERNAL, reason: 'internal error' };
      })
      .then((result) => {
        if (!result.ok) {
          this.log.warn({ peer: stream.peer, code: grpc.status[result.code], reason: result.reason }, 'ADS stream refused');
          stream.end(result.code, result.reason);
        } else stream.start(result.caller, result.boundNode, result.scope, result.role ?? 'node-agent');
      });
  }
}

interface StreamContext {
  store: ResourceStore;
  typeUrls: readonly string[];
  log: Logger;
  now: () => number;
  emit: (event: string, ...args: unknown[]) => void;
  listening: (event: string) => boolean;
  closed: () => void;
}

/** One DeltaAggregatedResources stream. */
class AdsStream {
  readonly peer: string;
  readonly connectedAt: Date;
  node: string | undefined;
  nodeName: string | undefined;
  private caller = '';
  role: AdsRole = 'node-agent';
  private pod: string | undefined;
  private boundNode: string | undefined;
  private scope: AdsScope | undefined;
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly ignoredTypes = new Set<string>();
  private writing = false;
  private ended = false;
  private closedOnce = false;
  private sequence = 0;

  constructor(
    readonly id: number,
    private readonly call: Call,
    private readonly ctx: StreamContext,
  ) {
    this.peer = call.getPeer();
    this.connectedAt = new Date(ctx.now());
    // Errors are reported to the client by grpc-js; here they only end the stream.
    call.on('error', () => this.closed());
    call.on('cancelled', () => this.closed());
    call.on('close', () => this.closed());
  }

  start(caller: string, boundNode: string | undefined, scope: AdsScope | undefined, role: AdsRole): void {
    if (this.ended) return;
    this.caller = caller;
    this.role = role;
    this.boundNode = boundNode;
    this.scope = scope;
    this.call.on('data', (request: DeltaDiscoveryRequest) => {
      try {
        this.onRequest(request);
      } catch (err) {
        this.ctx.log.error({ err: describeError(err), node: this.node }, 'unexpected failure handling an ADS request');
        this.end(grpc.status.INTERNAL, 'internal error');
      }
    });
    this.call.on('end', () => this.end(grpc.status.OK, 'client closed the stream'));
  }

  acked(typeUrl: string): ReadonlyMap<string, string> | undefined {
    return this.subscriptions.get(typeUrl)?.acked;
  }

  info(): AdsConnection {
    const typeUrls: Record<string, AdsTypeStatus> = {};
    for (const [typeUrl, sub] of this.subscriptions) {
      const pending = sub.awaiting !== undefined || sub.dirty || sub.first;
      typeUrls[typeUrl] = { ...sub.status, pending, sync: sub.status.nacked ? 'NACKED' : pending ? 'STALE' : 'SYNCED', resources: sub.held.size };
    }
    return {
      id: this.id,
      node: this.node ?? '',
      ...(this.nodeName ? { nodeName: this.nodeName } : {}),
      caller: this.caller,
      role: this.role,
      ...(this.pod ? { pod: this.pod } : {}),
      peer: this.peer,
      connectedAt: this.connectedAt,
      typeUrls,
    };
  }

  /** The store changed these types: push what differs, now or when the current write completes. */
  changed(typeUrls: readonly string[]): void {
    for (const typeUrl of typeUrls) {
      const sub = this.subscriptions.get(typeUrl);
      if (sub) sub.dirty = true;
    }
    this.pump();
  }

  end(code: grpc.status, details: string): void {
    if (this.ended) return;
    this.ended = true;
    if (code === grpc.status.OK) this.call.end();
    else this.call.emit('error', { code, details, metadata: new grpc.Metadata() });
    this.closed();
  }

  private closed(): void {
    this.ended = true;
    if (this.closedOnce) return;
    this.closedOnce = true;
    this.ctx.closed();
    if (this.node !== undefined) {
      this.ctx.log.info({ node: this.node, nodeName: this.nodeName, peer: this.peer }, 'ADS stream closed');
      this.ctx.emit('disconnect', this.nodeName ?? this.node);
    }
  }

  private onRequest(request: DeltaDiscoveryRequest): void {
    if (this.ended) return;
    if (this.node === undefined) {
      if (!request.node?.id) return this.end(grpc.status.INVALID_ARGUMENT, 'the first request must carry node.id');
      const nodeName = structStrings(request.node.metadata)[NODE_NAME_METADATA];
      if (this.boundNode && nodeName && nodeName !== this.boundNode) {
        this.ctx.log.warn({ node: request.node.id, nodeName, boundNode: this.boundNode, caller: this.caller }, 'ADS stream refused');
        return this.end(grpc.status.PERMISSION_DENIED, `NODE_NAME ${nodeName} is not the node ${this.boundNode} the token is bound to`);
      }
      this.node = request.node.id;
      this.nodeName = nodeName || undefined;
      this.pod = podOf(request.node.id, structStrings(request.node.metadata));
      this.ctx.log.info({ node: this.node, nodeName: this.nodeName, caller: this.caller, peer: this.peer }, 'ADS stream opened');
    }
    const typeUrl = request.typeUrl;
    if (!this.ctx.typeUrls.includes(typeUrl)) {
      if (!this.ignoredTypes.has(typeUrl)) this.ctx.log.warn({ node: this.node, typeUrl }, 'ADS request for a type this server does not serve; ignored');
      this.ignoredTypes.add(typeUrl);
      return;
    }
    if (this.scope && !this.scope.typeUrls.includes(typeUrl)) {
      this.ctx.log.warn({ node: this.node, caller: this.caller, typeUrl }, 'ADS stream refused: type outside the caller’s scope');
      return this.end(grpc.status.PERMISSION_DENIED, `${this.caller} may read ${this.scope.typeUrls.join(', ')} only`);
    }
    let sub = this.subscriptions.get(typeUrl);
    if (request.responseNonce && sub) this.onResponseNonce(typeUrl, sub, request);
    // A scoped caller (a waypoint) gets its own resources whatever it asks for: never a wildcard.
    const allowed = (names: readonly string[]): string[] => (this.scope ? (names.length === 0 || names.includes('*') ? [...this.scope.names] : names.filter((n) => this.scope?.names.includes(n))) : [...names]);
    if (!sub) {
      const subscribe = allowed(request.resourceNamesSubscribe);
      const initial = new Map(Object.entries(request.initialResourceVersions));
      sub = {
        wildcard: subscribe.length === 0 || subscribe.includes('*'),
        names: new Set(subscribe.filter((n) => n !== '*')),
        held: initial,
        acked: new Map(initial),
        outstanding: new Map(),
        awaiting: undefined,
        dirty: true,
        first: true,
        status: { pending: true, sync: 'STALE', responses: 0, nacks: 0, resources: 0 },
      };
      this.subscriptions.set(typeUrl, sub);
    } else if (request.resourceNamesSubscribe.length > 0 || request.resourceNamesUnsubscribe.length > 0) {
      for (const name of allowed(request.resourceNamesSubscribe)) {
        if (name === '*') sub.wildcard = true;
        else sub.names.add(name);
      }
      for (const name of request.resourceNamesUnsubscribe) {
        if (name === '*') sub.wildcard = false;
        else sub.names.delete(name);
      }
      sub.dirty = true;
    }
    this.pump();
  }

  private onResponseNonce(typeUrl: string, sub: Subscription, request: DeltaDiscoveryRequest): void {
    const nonce = request.responseNonce;
    if (sub.awaiting === nonce) sub.awaiting = undefined;
    const outstanding = sub.outstanding.get(nonce);
    sub.outstanding.delete(nonce);
    const nodeName = this.nodeName ?? this.node ?? '';
    const error = request.errorDetail;
    if (error && (error.code !== 0 || error.message)) {
      const nack: AdsNack = { message: error.message, at: new Date(this.ctx.now()), nonce };
      sub.status.lastNack = nack;
      sub.status.nacked = nack;
      sub.status.nacks++;
      this.ctx.log.warn({ node: this.node, nodeName: this.nodeName, typeUrl, nonce, code: error.code, message: error.message }, 'ADS response rejected (NACK)');
      if (outstanding) {
        const rejected = rejectedNames(error.message, [...outstanding.versions.keys()]);
        for (const name of rejected) outstanding.versions.delete(name);
        this.applyAcked(sub, outstanding);
      }
      this.ctx.emit('nack', nodeName, typeUrl, nack);
    } else {
      sub.status.ackedNonce = nonce;
      delete sub.status.nacked;
      if (outstanding) this.applyAcked(sub, outstanding);
    }
    if (outstanding && this.ctx.listening('ack')) this.ctx.emit('ack', nodeName, typeUrl, new Map(sub.acked));
  }

  private applyAcked(sub: Subscription, outstanding: Outstanding): void {
    for (const [name, version] of outstanding.versions) sub.acked.set(name, version);
    for (const name of outstanding.removed) sub.acked.delete(name);
  }

  /** Writes the next response that has something to say; one write at a time. */
  private pump(): void {
    if (this.ended || this.writing) return;
    for (const typeUrl of this.ctx.typeUrls) {
      const sub = this.subscriptions.get(typeUrl);
      if (!sub?.dirty || sub.awaiting !== undefined) continue;
      sub.dirty = false;
      const current = this.ctx.store.resources(typeUrl);
      const plan = planPush(current, sub);
      for (const name of plan.forget) sub.held.delete(name);
      if (plan.send.length === 0 && plan.remove.length === 0 && !sub.first) continue;
      sub.first = false;
      const nonce = `${this.id}-${++this.sequence}`;
      const resources: ResourceMessage[] = [];
      const versions = new Map<string, string>();
      for (const name of plan.send) {
        const r = current.get(name);
        if (!r) continue;
        resources.push({ name, version: r.version, resource: { type_url: typeUrl, value: r.bytes } });
        versions.set(name, r.version);
        sub.held.set(name, r.version);
      }
      for (const name of plan.remove) sub.held.delete(name);
      sub.outstanding.set(nonce, { versions, removed: plan.remove });
      sub.awaiting = nonce;
      if (sub.outstanding.size > MAX_OUTSTANDING) sub.outstanding.delete(sub.outstanding.keys().next().value as string);
      sub.status.responses++;
      sub.status.sentNonce = nonce;
      sub.status.sentAt = new Date(this.ctx.now());
      sub.status.sentResources = resources.length + plan.remove.length;
      if (this.ctx.listening('push')) this.ctx.emit('push', typeUrl, resources.length, plan.remove.length);
      this.ctx.log.debug({ node: this.node, typeUrl, nonce, resources: resources.length, removed: plan.remove.length }, 'ADS push');
      this.writing = true;
      this.call.write({ systemVersionInfo: '', resources, typeUrl, nonce, removedResources: plan.remove }, () => {
        this.writing = false;
        this.pump();
      });
      return;
    }
  }
}

/**
 * The proxy's pod `<namespace>/<name>`: Istio node metadata NAME + NAMESPACE, else the node id
 * `<type>~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>` (ztunnel's and the waypoints').
 */
export function podOf(nodeId: string, metadata: Readonly<Record<string, string>>): string | undefined {
  if (metadata.NAME && metadata.NAMESPACE) return `${metadata.NAMESPACE}/${metadata.NAME}`;
  const podPart = nodeId.split('~')[2];
  const dot = podPart?.lastIndexOf('.') ?? -1;
  if (!podPart || dot <= 0 || dot === podPart.length - 1) return undefined;
  return `${podPart.slice(dot + 1)}/${podPart.slice(0, dot)}`;
}

/** Puts the ADS service on a gRPC server (the CA's, port 15012, as istiod does). */
export function addAdsService(server: grpc.Server, ads: AdsServer): void {
  server.addService(ads.definition, ads.implementation);
}
