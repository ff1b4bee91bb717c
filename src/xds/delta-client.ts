/**
 * The delta ADS client transport (DESIGN §6): one `DeltaAggregatedResources` stream to the
 * controller (or istiod), wildcard subscriptions to the given types (or, per type, to explicit
 * resource names), ACK/NACK of every response,
 * and reconnection with backoff. The node agent's xDS client builds on it; the mesh state itself
 * belongs to the caller (`onUpdate`).
 *
 * Contract:
 * - Responses are handed to `onUpdate` one at a time, in order (the stream is paused meanwhile).
 *   Resources it does not reject are remembered (name → version) per type; on every new stream
 *   they go out as `initial_resource_versions`, so the server sends only what changed while we
 *   were away, plus removals. `initial` marks the first response of a type on a stream.
 * - Across streams too: a new stream is not opened while a response of the previous one is still
 *   in `onUpdate` (its stream may end meanwhile). What it applies is remembered first, so the new
 *   stream's `initial_resource_versions` include it and the server does not send it again.
 * - ACK: a request with the response's nonce. NACK: the same with `error_detail` (code 3
 *   INVALID_ARGUMENT, message `<name>: <reason>; …` for per-resource rejections, or the thrown
 *   error's message when the whole response was refused — then nothing of it is remembered).
 * - Any end of the stream (error, server shutdown, our own NACK never ends it) schedules a new
 *   one after a jittered exponential backoff (default 10 ms doubling to 15 s, ±20 %), reset once
 *   a stream has delivered a response. gRPC's own reconnect backoff is capped the same way so a
 *   retry actually dials. `onConnectionChange` reports transitions only.
 * - `close()` cancels the stream, stops retrying and closes the channel: no timer or socket left.
 */
import * as grpc from '@grpc/grpc-js';
import { describeError } from '../errors/amesh-error.js';
import type { Logger } from '../telemetry/logger.js';
import { DELTA_ADS_PATH, deserializeDeltaResponse, NACK_CODE, serializeDeltaRequest, stringStruct, type DeltaDiscoveryRequest, type DeltaDiscoveryResponse } from './delta-messages.js';

export interface DeltaResource {
  name: string;
  version: string;
  /** The Any's value bytes. */
  resource: Uint8Array;
}

export interface DeltaUpdate {
  typeUrl: string;
  resources: DeltaResource[];
  removed: string[];
  /** true for the first response of this type on a new stream: together with the client's known state it is the full state */
  initial: boolean;
}

export interface DeltaClientOptions {
  /** host:port */
  address: string;
  credentials: grpc.ChannelCredentials;
  /** e.g. bearer token, re-read per stream */
  callCredentials?: () => Promise<grpc.Metadata>;
  node: { id: string; cluster?: string; metadata: Record<string, string> };
  /** subscribed wildcard, in this order */
  typeUrls: string[];
  /**
   * Types subscribed by explicit resource names instead of wildcard (a waypoint asks for its own
   * config only: `<namespace>/<name>`). Types not listed here stay wildcard.
   */
  resourceNames?: Readonly<Record<string, readonly string[]>>;
  /** Apply one response. Return a map of rejected resource name → reason to NACK them (the rest are applied); throw to NACK the whole response. */
  onUpdate(update: DeltaUpdate): Promise<ReadonlyMap<string, string> | void>;
  onConnectionChange?(connected: boolean, error?: Error): void;
  logger: Logger;
  /** default 10 ms → 15 s, jittered, reset after a healthy stream */
  backoff?: { initialMs: number; maxMs: number };
  /** Extra channel options (TLS name override, keepalive). */
  channelOptions?: grpc.ChannelOptions;
  /** Injected for tests; default Math.random. */
  random?: () => number;
}

export interface DeltaClientStatus {
  connected: boolean;
  reconnects: number;
  lastError?: string;
  /**
   * Per type: `lastNonce` answered (ACK or NACK), `lastAckedNonce`, the last NACK's reason (kept
   * after later ACKs: the last rejection seen), and how many responses were ACKed / NACKed.
   */
  types: Record<string, { lastNonce?: string; lastAckedNonce?: string; lastNack?: string; acks: number; nacks: number; resources: number }>;
}

export const DEFAULT_XDS_BACKOFF: Readonly<{ initialMs: number; maxMs: number }> = Object.freeze({ initialMs: 10, maxMs: 15_000 });
const JITTER = 0.2;
/** How long close() waits for the cancelled stream to report its status. */
const CLOSE_GRACE_MS = 2_000;

type Call = grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;

interface TypeState {
  /** name → version of every accepted resource. */
  known: Map<string, string>;
  lastNonce?: string;
  lastAckedNonce?: string;
  lastNack?: string;
  acks: number;
  nacks: number;
}

/** The wait before retry number `attempt` (0-based): exponential, capped, ±20 % jitter. */
export function backoffDelay(attempt: number, backoff: { initialMs: number; maxMs: number }, random: () => number): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - JITTER + 2 * JITTER * random()));
}

export class DeltaXdsClient {
  private readonly log: Logger;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly random: () => number;
  private readonly types = new Map<string, TypeState>();
  private client: grpc.Client | undefined;
  private call: Call | undefined;
  /** Types that have had their first response on the current stream. */
  private seenOnStream = new Set<string>();
  private retryTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private connected = false;
  private reconnects = 0;
  private lastError: string | undefined;
  private started = false;
  private closed = false;
  private callEnded: (() => void) | undefined;
  /** Settles when the response being handled (of any stream) has been applied and remembered. */
  private applying: Promise<void> = Promise.resolve();

  constructor(private readonly o: DeltaClientOptions) {
    this.log = o.logger.child({ component: 'xds-client' });
    this.backoff = o.backoff ?? DEFAULT_XDS_BACKOFF;
    this.random = o.random ?? Math.random;
    for (const typeUrl of o.typeUrls) this.types.set(typeUrl, { known: new Map(), acks: 0, nacks: 0 });
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.client = new grpc.Client(this.o.address, this.o.credentials, {
      'grpc.initial_reconnect_backoff_ms': this.backoff.initialMs,
      'grpc.max_reconnect_backoff_ms': this.backoff.maxMs,
      ...this.o.channelOptions,
    });
    void this.open();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Closing is not a connection failure: no onConnectionChange, but status() stops claiming a stream.
    this.connected = false;
    clearTimeout(this.retryTimer);
    const call = this.call;
    if (call) {
      let timer: NodeJS.Timeout | undefined;
      const ended = new Promise<void>((resolve) => {
        this.callEnded = resolve;
        timer = setTimeout(resolve, CLOSE_GRACE_MS);
      });
      call.cancel();
      await ended;
      clearTimeout(timer);
    }
    this.client?.close();
    this.client = undefined;
  }

  status(): DeltaClientStatus {
    const types: DeltaClientStatus['types'] = {};
    for (const [typeUrl, t] of this.types) {
      types[typeUrl] = {
        resources: t.known.size,
        acks: t.acks,
        nacks: t.nacks,
        ...(t.lastNonce !== undefined ? { lastNonce: t.lastNonce } : {}),
        ...(t.lastAckedNonce !== undefined ? { lastAckedNonce: t.lastAckedNonce } : {}),
        ...(t.lastNack !== undefined ? { lastNack: t.lastNack } : {}),
      };
    }
    return { connected: this.connected, reconnects: this.reconnects, ...(this.lastError !== undefined ? { lastError: this.lastError } : {}), types };
  }

  private async open(): Promise<void> {
    const client = this.client;
    if (this.closed || !client) return;
    let metadata: grpc.Metadata;
    try {
      metadata = this.o.callCredentials ? await this.o.callCredentials() : new grpc.Metadata();
    } catch (err) {
      this.failed(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (this.closed) return;
    // A response of the ended stream may still be in onUpdate: what it applies belongs in `known`.
    await this.applying;
    if (this.closed) return;
    const call: Call = client.makeBidiStreamRequest(DELTA_ADS_PATH, serializeDeltaRequest, deserializeDeltaResponse, metadata, {});
    this.call = call;
    this.seenOnStream = new Set();
    let error: Error | undefined;
    call.on('data', (response: DeltaDiscoveryResponse) => {
      call.pause();
      this.applying = this.handle(call, response)
        .catch((err: unknown) => this.log.error({ err: describeError(err) }, 'unexpected failure handling an xDS response'))
        .finally(() => call.resume());
    });
    call.on('error', (err: Error) => {
      error = err;
    });
    call.on('status', (status: grpc.StatusObject) => {
      if (this.call !== call) return;
      this.call = undefined;
      this.streamEnded(error ?? new Error(`the xDS stream ended: ${grpc.status[status.code]} ${status.details}`));
    });
    const node = { id: this.o.node.id, cluster: this.o.node.cluster ?? '', metadata: stringStruct(this.o.node.metadata) };
    for (const [typeUrl, t] of this.types) {
      // No names on the first request = a wildcard subscription (istiod and our server both read it so).
      const names = this.o.resourceNames?.[typeUrl] ?? [];
      this.send(call, { node, typeUrl, resourceNamesSubscribe: [...names], resourceNamesUnsubscribe: [], initialResourceVersions: Object.fromEntries(t.known), responseNonce: '' });
    }
  }

  private send(call: Call, request: DeltaDiscoveryRequest): void {
    if (this.call !== call) return;
    call.write(request);
  }

  private async handle(call: Call, response: DeltaDiscoveryResponse): Promise<void> {
    if (this.call !== call || this.closed) return;
    const { typeUrl, nonce } = response;
    const state = this.types.get(typeUrl);
    if (!state) {
      this.log.warn({ typeUrl, nonce }, 'xDS response for a type we did not subscribe to; ignored');
      return;
    }
    if (!this.connected) {
      this.connected = true;
      this.attempt = 0;
      this.log.info({ address: this.o.address }, 'xDS connected');
      this.o.onConnectionChange?.(true);
    }
    const initial = !this.seenOnStream.has(typeUrl);
    this.seenOnStream.add(typeUrl);
    const rejected = new Map<string, string>();
    const resources: DeltaResource[] = [];
    for (const r of response.resources) {
      const any = r.resource;
      if (!any) rejected.set(r.name, 'the resource has no payload');
      else if (any.type_url !== typeUrl) rejected.set(r.name, `the resource is a ${any.type_url}, not a ${typeUrl}`);
      else resources.push({ name: r.name, version: r.version, resource: any.value });
    }
    const update: DeltaUpdate = { typeUrl, resources, removed: response.removedResources, initial };
    try {
      const refused = await this.o.onUpdate(update);
      for (const [name, reason] of refused ?? []) rejected.set(name, reason);
    } catch (err) {
      this.nack(call, state, typeUrl, nonce, describeError(err).split('\n')[0] ?? 'rejected');
      return;
    }
    for (const r of resources) if (!rejected.has(r.name)) state.known.set(r.name, r.version);
    for (const name of response.removedResources) state.known.delete(name);
    if (rejected.size > 0) {
      this.nack(
        call,
        state,
        typeUrl,
        nonce,
        [...rejected].map(([name, reason]) => `${name}: ${reason}`).join('; '),
      );
      return;
    }
    state.lastNonce = nonce;
    state.lastAckedNonce = nonce;
    state.acks++;
    this.log.debug({ typeUrl, nonce, resources: resources.length, removed: response.removedResources.length, initial }, 'xDS update applied');
    this.send(call, { typeUrl, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: nonce });
  }

  private nack(call: Call, state: TypeState, typeUrl: string, nonce: string, message: string): void {
    state.lastNonce = nonce;
    state.lastNack = message;
    state.nacks++;
    this.log.warn({ typeUrl, nonce, reason: message }, 'xDS update rejected (NACK)');
    this.send(call, { typeUrl, resourceNamesSubscribe: [], resourceNamesUnsubscribe: [], initialResourceVersions: {}, responseNonce: nonce, errorDetail: { code: NACK_CODE, message } });
  }

  private streamEnded(error: Error): void {
    this.callEnded?.();
    if (this.closed) return;
    this.failed(error);
  }

  private failed(error: Error): void {
    this.lastError = error.message;
    if (this.connected) {
      this.connected = false;
      this.o.onConnectionChange?.(false, error);
    }
    const delay = backoffDelay(this.attempt++, this.backoff, this.random);
    this.reconnects++;
    this.log.warn({ address: this.o.address, err: error.message, retryInMs: delay }, 'xDS stream failed; reconnecting');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.open();
    }, delay);
  }
}
