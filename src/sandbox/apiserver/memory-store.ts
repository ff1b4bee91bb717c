/**
 * The sandbox cluster's storage: an in-memory `ClusterStore` with the semantics of
 * kube-apiserver + etcd that controllers and kubectl rely on (see types.ts for the contract).
 *
 * Invariants beyond types.ts:
 * - Objects are stored once per group/kind (registry.ts) and copied on the way in and out.
 * - Every committed change goes through `#commit`, which takes the next resourceVersion,
 *   updates the uid index, appends to the event log and queues watch deliveries — so the log,
 *   the index and the watchers can never disagree.
 * - Garbage collection and finalizer completion run synchronously inside the write that
 *   triggers them; each step is its own committed change (own resourceVersion), exactly as
 *   watchers of a real cluster would observe them, only faster. Namespace cascades run on a
 *   short timer (see `namespaceCascadeDelayMs`) like Kubernetes' namespace controller.
 * - System writes (GC, finalizer bookkeeping) skip admission; user writes never do.
 */
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { admit as defaultAdmit, type AdmissionContext } from './admission/index.js';
import { alreadyExists, badRequest, conflict, expired, forbidden, invalid, methodNotAllowed, notFound, preconditionFailed, resourceNotServed } from './api-errors.js';
import { createClusterIpAllocator, type ClusterIpAllocator } from './cluster-ip-allocator.js';
import { EventLog, type LoggedEvent } from './event-log.js';
import { applyPatch, recordUpdateManager } from './patch/index.js';
import { apiVersionOf, ResourceRegistry, storageKeyOf } from './registry.js';
import { matchesSelector, parseSelector, type Selector } from './selectors.js';
import { readSnapshot, SNAPSHOT_FORMAT, writeSnapshot } from './snapshot.js';
import { AmeshError } from '../../errors/amesh-error.js';
import type {
  ClusterStore,
  DeleteOptions,
  KubeList,
  KubeObject,
  ListOptions,
  ObjectMeta,
  PatchType,
  ResourceType,
  WatchEvent,
  WatchOptions,
  WriteOptions,
} from './types.js';

export type AdmitFunction = (object: KubeObject, ctx: AdmissionContext) => KubeObject;

export interface MemoryStoreOptions {
  /** Loaded at creation when the file exists; written by `saveSnapshot()`. */
  snapshotPath?: string;
  /** Writes kept for watch resumption (default 10000). */
  eventLogSize?: number;
  now?: () => Date;
  /** Defaulting + validation for user writes (default: admission/index.ts). */
  admission?: AdmitFunction;
  /**
   * How long after a Namespace is marked Terminating its contents are deleted (default 1000 ms;
   * 0 = within the delete call). Kubernetes' namespace controller is asynchronous too, and
   * `kubectl delete -f` of a manifest that lists the Namespace first relies on that: its later
   * deletes of objects in the namespace must still find them.
   */
  namespaceCascadeDelayMs?: number;
  /**
   * Graceful pod deletion as kube-apiserver does it (default false): deleting a Pod bound to an
   * existing Node only sets deletionTimestamp (now + grace period) and deletionGracePeriodSeconds;
   * the node's kubelet stops the containers and finishes with `delete(…, { gracePeriodSeconds: 0 })`.
   * Off, pods are removed at once and the kubelet reacts to the DELETED event.
   */
  gracefulPodDeletion?: boolean;
  /** How often a watch that allows bookmarks gets one (default 60 s, like kube-apiserver). */
  bookmarkIntervalMs?: number;
  log?: Logger;
}

export interface MemoryStore extends ClusterStore {
  /** The registry serving discovery; changes when CRDs are created or deleted. */
  readonly registry: ResourceRegistry;
  saveSnapshot(): Promise<void>;
  /** Stops every watch. The store stays readable. */
  close(): void;
}

/** Namespaces every cluster starts with. */
export const INITIAL_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];
/** Namespaces kube-apiserver refuses to delete. */
const PROTECTED_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);
/** Kinds answered, never stored. */
const UNSTORED_KINDS = new Set(['authentication.k8s.io/TokenReview']);
/** Kinds that keep `status` on create although they have a status subresource (as in Kubernetes). */
const STATUS_ON_CREATE = new Set(['/Node']);

const FOREGROUND = 'foregroundDeletion';
const NAME_SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

interface Subscriber {
  storageKey: string;
  type: ResourceType;
  selector: Selector;
  queue: Array<WatchEvent>;
  scheduled: boolean;
  closed: boolean;
  onEvent: (event: WatchEvent) => void;
  timer?: NodeJS.Timeout;
}

/** Kubernetes timestamps: RFC 3339 with second precision. */
function timestamp(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function randomSuffix(): string {
  let out = '';
  for (let i = 0; i < 5; i++) out += NAME_SUFFIX_ALPHABET[Math.floor(Math.random() * NAME_SUFFIX_ALPHABET.length)];
  return out;
}

/** The object without metadata and status: what `metadata.generation` tracks. */
function specPart(object: KubeObject): Record<string, unknown> {
  const { metadata: _metadata, status: _status, apiVersion: _apiVersion, ...rest } = object;
  return rest;
}

/** Compares ignoring bookkeeping fields, to detect updates that change nothing. */
function sameContent(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject): unknown => {
    const { resourceVersion: _rv, managedFields: _mf, ...meta } = o.metadata;
    return { ...o, apiVersion: '', metadata: meta };
  };
  return isDeepStrictEqual(strip(a), strip(b));
}

function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

/** Rejects values that are not even shaped like a Kubernetes object (400, like a decode error). */
function checkShape(object: unknown): KubeObject {
  if (object === null || typeof object !== 'object' || Array.isArray(object)) throw badRequest('the request body must be a JSON object with apiVersion, kind and metadata');
  const o = object as Record<string, unknown>;
  if (typeof o.apiVersion !== 'string' || !o.apiVersion) throw badRequest("Object 'apiVersion' is missing or not a string");
  if (typeof o.kind !== 'string' || !o.kind) throw badRequest("Object 'Kind' is missing or not a string");
  if (o.metadata === undefined) o.metadata = {};
  if (o.metadata === null || typeof o.metadata !== 'object' || Array.isArray(o.metadata)) throw badRequest(`metadata of ${o.kind} must be an object`);
  const meta = o.metadata as Record<string, unknown>;
  for (const field of ['name', 'generateName', 'namespace', 'resourceVersion', 'uid'] as const) {
    if (meta[field] !== undefined && typeof meta[field] !== 'string') throw badRequest(`metadata.${field} of ${o.kind} must be a string`);
  }
  for (const field of ['labels', 'annotations'] as const) {
    const value = meta[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'object' || Array.isArray(value) || !Object.values(value).every((v) => typeof v === 'string')) {
      throw badRequest(`metadata.${field} of ${o.kind} must be a map of strings`);
    }
  }
  for (const field of ['finalizers', 'ownerReferences'] as const) {
    if (meta[field] !== undefined && meta[field] !== null && !Array.isArray(meta[field])) throw badRequest(`metadata.${field} of ${o.kind} must be a list`);
  }
  return o as KubeObject;
}

/**
 * A patch may not change apiVersion or kind (kube-apiserver refuses too); checked up front so
 * no patch implementation ever sees an object whose type fields are gone or of the wrong type.
 */
function checkPatchKeepsKind(type: PatchType, patch: unknown, live: KubeObject): void {
  const refuse = (): never => {
    throw badRequest(`a patch cannot change apiVersion or kind of ${live.kind} "${live.metadata.name ?? ''}"`);
  };
  if (type === 'json') {
    if (!Array.isArray(patch)) return;
    for (const op of patch as Array<{ op?: unknown; path?: unknown; from?: unknown }>) {
      if (op === null || typeof op !== 'object' || op.op === 'test') continue;
      if (op.path === '/apiVersion' || op.path === '/kind' || op.path === '' || op.from === '/apiVersion' || op.from === '/kind') refuse();
    }
    return;
  }
  if (type === 'apply' || patch === null || typeof patch !== 'object' || Array.isArray(patch)) return;
  const p = patch as Record<string, unknown>;
  if ('apiVersion' in p && p.apiVersion !== live.apiVersion) refuse();
  if ('kind' in p && p.kind !== live.kind) refuse();
}

class InMemoryClusterStore implements MemoryStore {
  readonly registry = new ResourceRegistry();
  readonly #objects = new Map<string, Map<string, KubeObject>>();
  /** uid → where the object lives, for owner-reference lookups. */
  readonly #byUid = new Map<string, { storageKey: string; key: string }>();
  readonly #subscribers = new Set<Subscriber>();
  readonly #now: () => Date;
  readonly #admit: AdmitFunction;
  readonly #snapshotPath: string | undefined;
  readonly #bookmarkIntervalMs: number;
  readonly #log: Logger | undefined;
  readonly #ips: ClusterIpAllocator;
  readonly #namespaceCascadeDelayMs: number;
  readonly #gracefulPodDeletion: boolean;
  readonly #cascades = new Map<string, NodeJS.Timeout>();
  #events: EventLog;
  #resourceVersion = 0;

  constructor(options: MemoryStoreOptions) {
    this.#now = options.now ?? (() => new Date());
    this.#admit = options.admission ?? defaultAdmit;
    this.#snapshotPath = options.snapshotPath;
    this.#bookmarkIntervalMs = options.bookmarkIntervalMs ?? 60_000;
    this.#namespaceCascadeDelayMs = options.namespaceCascadeDelayMs ?? 1000;
    this.#gracefulPodDeletion = options.gracefulPodDeletion ?? false;
    this.#log = options.log;
    this.#ips = createClusterIpAllocator(() => this.#serviceIps());
    const eventLogSize = options.eventLogSize ?? 10_000;
    const snapshot = this.#snapshotPath ? readSnapshot(this.#snapshotPath) : undefined;
    if (snapshot) {
      this.#resourceVersion = snapshot.resourceVersion;
      // CRDs first: their types must be registered before their objects can be placed.
      const crds = snapshot.objects.filter((o) => o.kind === 'CustomResourceDefinition');
      for (const crd of crds) this.registry.registerCrd(crd);
      for (const object of snapshot.objects) {
        const type = this.registry.byKind(object.apiVersion, object.kind);
        if (!type) {
          this.#log?.warn({ apiVersion: object.apiVersion, kind: object.kind, name: object.metadata.name }, 'snapshot object of an unserved kind dropped');
          continue;
        }
        this.#place(type, object);
      }
    }
    this.#events = new EventLog(eventLogSize, this.#resourceVersion);
    for (const name of INITIAL_NAMESPACES) {
      if (!this.#raw(this.#type('v1', 'Namespace'), undefined, name)) this.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    }
  }

  // ---- reads ----------------------------------------------------------------------------

  resourceType(apiVersion: string, kind: string): ResourceType | undefined {
    return this.registry.byKind(apiVersion, kind);
  }

  currentResourceVersion(): string {
    return String(this.#resourceVersion);
  }

  get<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string): T | undefined {
    const type = this.#type(apiVersion, kind);
    const object = this.#raw(type, namespace, name);
    return object ? (this.#out(object, type) as T) : undefined;
  }

  list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, options: ListOptions = {}): KubeList<T> {
    const type = this.#type(apiVersion, kind);
    const selector = parseSelector({ ...options, namespace: type.namespaced ? options.namespace : undefined });
    const items = [...this.#bucket(type).values()]
      .filter((o) => matchesSelector(selector, o))
      .sort((a, b) => objectKey(a.metadata.namespace, a.metadata.name ?? '').localeCompare(objectKey(b.metadata.namespace, b.metadata.name ?? '')))
      .map((o) => this.#out(o, type) as T);
    return { apiVersion: apiVersionOf(type.group, type.version), kind: type.listKind, metadata: { resourceVersion: this.currentResourceVersion() }, items };
  }

  // ---- writes ---------------------------------------------------------------------------

  create<T extends KubeObject = KubeObject>(object: T, options: WriteOptions = {}): T {
    try {
      return this.#create(checkShape(structuredClone(object)), options) as T;
    } finally {
      this.#ips.endWrite();
    }
  }

  update<T extends KubeObject = KubeObject>(object: T, options: WriteOptions = {}): T {
    try {
      return this.#update(checkShape(structuredClone(object)), options) as T;
    } finally {
      this.#ips.endWrite();
    }
  }

  patch<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string, type: PatchType, patch: unknown, options: WriteOptions = {}): T {
    try {
      return this.#patch(apiVersion, kind, namespace, name, type, patch, options) as T;
    } finally {
      this.#ips.endWrite();
    }
  }

  delete<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string, options: DeleteOptions = {}): T {
    const type = this.#type(apiVersion, kind);
    this.#checkStored(type, 'delete');
    const existing = this.#raw(type, namespace, name);
    if (!existing) throw notFound(type, name);
    const pre = options.preconditions;
    if (pre?.uid !== undefined && pre.uid !== existing.metadata.uid) {
      throw preconditionFailed(type, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${existing.metadata.uid ?? ''}`);
    }
    if (pre?.resourceVersion !== undefined && pre.resourceVersion !== existing.metadata.resourceVersion) {
      throw preconditionFailed(type, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${existing.metadata.resourceVersion ?? ''}`);
    }
    if (type.group === '' && type.kind === 'Namespace' && PROTECTED_NAMESPACES.has(name)) throw forbidden(type, name, 'this namespace may not be deleted');
    if (options.dryRun) return this.#out(existing, type) as T;
    const result = this.#delete(type, existing, options.propagationPolicy ?? 'Background', options.gracePeriodSeconds);
    return this.#out(result, type) as T;
  }

  watch<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, options: WatchOptions, onEvent: (event: WatchEvent<T>) => void): () => void {
    const type = this.#type(apiVersion, kind);
    const selector = parseSelector({ ...options, namespace: type.namespaced ? options.namespace : undefined });
    const subscriber: Subscriber = {
      storageKey: storageKeyOf(type),
      type,
      selector,
      queue: [],
      scheduled: false,
      closed: false,
      onEvent: onEvent as (event: WatchEvent) => void,
    };
    const from = options.resourceVersion;
    if (!from || from === '0') {
      for (const object of this.#bucket(type).values()) if (matchesSelector(selector, object)) subscriber.queue.push({ type: 'ADDED', object: this.#out(object, type) });
    } else {
      const version = Number(from);
      if (!/^\d+$/.test(from) || !Number.isSafeInteger(version)) throw badRequest(`invalid resourceVersion "${from}": must be a decimal number`);
      const events = this.#events.since(version);
      if (!events) throw expired(`too old resource version: ${version} (${this.#events.compactedThrough})`);
      for (const event of events) if (event.storageKey === subscriber.storageKey) this.#enqueue(subscriber, event);
    }
    this.#subscribers.add(subscriber);
    if (options.allowBookmarks) {
      subscriber.timer = setInterval(() => this.#bookmark(subscriber), this.#bookmarkIntervalMs);
      subscriber.timer.unref();
    }
    this.#schedule(subscriber);
    return () => this.#unsubscribe(subscriber);
  }

  async saveSnapshot(): Promise<void> {
    if (!this.#snapshotPath) throw new AmeshError('AMESH_SNAPSHOT_FAILED', 'this store has no snapshot path', { hint: 'pass snapshotPath to createMemoryStore' });
    const objects: KubeObject[] = [];
    for (const bucket of this.#objects.values()) for (const object of bucket.values()) objects.push(structuredClone(object));
    await writeSnapshot(this.#snapshotPath, { format: SNAPSHOT_FORMAT, resourceVersion: this.#resourceVersion, objects });
  }

  close(): void {
    for (const subscriber of [...this.#subscribers]) this.#unsubscribe(subscriber);
    for (const timer of this.#cascades.values()) clearTimeout(timer);
    this.#cascades.clear();
  }

  // ---- internals: lookup ----------------------------------------------------------------

  #type(apiVersion: string, kind: string): ResourceType {
    const type = this.registry.byKind(apiVersion, kind);
    if (!type) throw resourceNotServed(`no matches for kind "${kind}" in version "${apiVersion}"`);
    return type;
  }

  #checkStored(type: ResourceType, verb: string): void {
    if (UNSTORED_KINDS.has(storageKeyOf(type))) throw methodNotAllowed(`${type.plural}.${type.group} support only "create", answered by the API server (not "${verb}")`);
  }

  #bucket(type: Pick<ResourceType, 'group' | 'kind'>): Map<string, KubeObject> {
    const key = storageKeyOf(type);
    let bucket = this.#objects.get(key);
    if (!bucket) {
      bucket = new Map();
      this.#objects.set(key, bucket);
    }
    return bucket;
  }

  #raw(type: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.#bucket(type).get(objectKey(type.namespaced ? (namespace ?? 'default') : undefined, name));
  }

  #byUidLookup(uid: string): { type: ResourceType; object: KubeObject } | undefined {
    const where = this.#byUid.get(uid);
    if (!where) return undefined;
    const object = this.#objects.get(where.storageKey)?.get(where.key);
    if (!object) return undefined;
    const type = this.registry.byKind(object.apiVersion, object.kind);
    return type ? { type, object } : undefined;
  }

  #out(object: KubeObject, type: ResourceType): KubeObject {
    const copy = structuredClone(object);
    copy.apiVersion = apiVersionOf(type.group, type.version);
    return copy;
  }

  #place(type: ResourceType, object: KubeObject): void {
    const key = objectKey(object.metadata.namespace, object.metadata.name ?? '');
    this.#bucket(type).set(key, object);
    if (object.metadata.uid) this.#byUid.set(object.metadata.uid, { storageKey: storageKeyOf(type), key });
  }

  #serviceIps(): string[] {
    const ips: string[] = [];
    for (const service of this.#objects.get('/Service')?.values() ?? []) {
      const spec = (service.spec ?? {}) as { clusterIP?: unknown; clusterIPs?: unknown };
      if (typeof spec.clusterIP === 'string' && spec.clusterIP !== 'None' && spec.clusterIP) ips.push(spec.clusterIP);
      if (Array.isArray(spec.clusterIPs)) for (const ip of spec.clusterIPs) if (typeof ip === 'string' && ip !== 'None' && ip) ips.push(ip);
    }
    return ips;
  }

  #admissionContext(operation: 'CREATE' | 'UPDATE', type: ResourceType, oldObject: KubeObject | undefined, subresource: 'status' | undefined): AdmissionContext {
    return {
      operation,
      resourceType: type,
      ...(oldObject ? { oldObject: this.#out(oldObject, type) } : {}),
      ...(subresource ? { subresource } : {}),
      allocateClusterIp: () => this.#ips.allocate(),
      releaseClusterIp: (ip: string) => this.#ips.release(ip),
      isClusterIpInUse: (ip: string) => this.#ips.isInUse(ip),
    };
  }

  // ---- internals: the single commit point -------------------------------------------------

  #commit(type: ResourceType, eventType: 'ADDED' | 'MODIFIED' | 'DELETED', object: KubeObject, previous: KubeObject | undefined): KubeObject {
    this.#resourceVersion++;
    object.apiVersion = apiVersionOf(type.group, this.registry.versionsOf(type)[0]?.version ?? type.version);
    object.metadata.resourceVersion = String(this.#resourceVersion);
    const key = objectKey(object.metadata.namespace, object.metadata.name ?? '');
    if (eventType === 'DELETED') {
      this.#bucket(type).delete(key);
      if (object.metadata.uid) this.#byUid.delete(object.metadata.uid);
    } else {
      this.#place(type, object);
    }
    const event: LoggedEvent = {
      resourceVersion: this.#resourceVersion,
      storageKey: storageKeyOf(type),
      type: eventType,
      object: structuredClone(object),
      ...(previous ? { previous: structuredClone(previous) } : {}),
    };
    this.#events.append(event);
    for (const subscriber of this.#subscribers) {
      if (subscriber.storageKey !== event.storageKey) continue;
      this.#enqueue(subscriber, event);
      this.#schedule(subscriber);
    }
    return object;
  }

  // ---- internals: create / update / patch -------------------------------------------------

  #create(input: KubeObject, options: WriteOptions & { managed?: boolean }): KubeObject {
    const type = this.#type(input.apiVersion, input.kind);
    this.#checkStored(type, 'create');
    const meta = input.metadata;
    if (type.namespaced) meta.namespace = meta.namespace || 'default';
    else delete meta.namespace;
    if (!meta.name && meta.generateName) {
      for (let attempt = 0; attempt < 8 && !meta.name; attempt++) {
        const candidate = `${meta.generateName}${randomSuffix()}`;
        if (!this.#raw(type, meta.namespace, candidate)) meta.name = candidate;
      }
    }
    const name = meta.name ?? '';
    if (!name) throw invalid(type, '', [{ field: 'metadata.name', message: 'Required value: name or generateName is required', reason: 'FieldValueRequired' }]);
    if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
      throw invalid(type, name, [
        {
          field: 'metadata.name',
          message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
        },
      ]);
    }
    if (type.namespaced) {
      const namespace = this.#raw(this.#type('v1', 'Namespace'), undefined, meta.namespace ?? '');
      if (!namespace) throw notFound(this.#type('v1', 'Namespace'), meta.namespace ?? '');
      if (namespace.metadata.deletionTimestamp) {
        throw forbidden(type, name, `unable to create new content in namespace ${meta.namespace ?? ''} because it is being terminated`);
      }
    }
    if (this.#raw(type, meta.namespace, name)) throw alreadyExists(type, name);

    for (const field of ['uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation'] as const) delete meta[field];
    if (type.statusSubresource && !STATUS_ON_CREATE.has(storageKeyOf(type))) delete input.status;
    const now = this.#now();
    let object = this.#admit(input, this.#admissionContext('CREATE', type, undefined, undefined));
    object.metadata.name = name;
    if (type.namespaced) object.metadata.namespace = meta.namespace;
    if (options.fieldManager && !options.managed) object = recordUpdateManager(undefined, object, options.fieldManager, 'Update', now);
    object.metadata.uid = randomUUID();
    object.metadata.creationTimestamp = timestamp(now);
    object.metadata.generation = 1;
    this.#initialiseSystemFields(type, object);
    if (options.dryRun) return this.#out({ ...object, metadata: { ...object.metadata, resourceVersion: this.currentResourceVersion() } }, type);
    const stored = this.#commit(type, 'ADDED', object, undefined);
    if (this.#isCrd(type)) this.registry.registerCrd(stored);
    this.#collectIfOrphaned(type, stored);
    return this.#out(stored, type);
  }

  /**
   * Kubernetes' garbage collector also removes an object created with owner references none of
   * which exists any more (a controller that acted on a stale cache): in the background, like the
   * real one, so the creator still sees its 201.
   */
  #collectIfOrphaned(type: ResourceType, created: KubeObject): void {
    const refs = created.metadata.ownerReferences ?? [];
    if (refs.length === 0 || refs.some((ref) => this.#byUidLookup(ref.uid))) return;
    setImmediate(() => {
      const current = this.#raw(type, created.metadata.namespace, created.metadata.name ?? '');
      if (!current || current.metadata.uid !== created.metadata.uid || current.metadata.deletionTimestamp) return;
      if ((current.metadata.ownerReferences ?? []).some((ref) => this.#byUidLookup(ref.uid))) return;
      this.#delete(type, current, 'Background');
    });
  }

  /** Status the API server itself maintains for some kinds. */
  #initialiseSystemFields(type: ResourceType, object: KubeObject): void {
    if (type.group === '' && type.kind === 'Namespace') {
      object.spec = { ...((object.spec as object | undefined) ?? {}), finalizers: ['kubernetes'] };
      object.status = { phase: 'Active' };
    }
    if (this.#isCrd(type)) {
      const spec = (object.spec ?? {}) as { names?: Record<string, unknown> };
      const at = timestamp(this.#now());
      object.status = {
        acceptedNames: spec.names ?? {},
        storedVersions: ((object.spec as { versions?: Array<{ name?: string; storage?: boolean }> }).versions ?? []).filter((v) => v.storage).map((v) => v.name),
        conditions: [
          { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: at },
          { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: at },
        ],
      };
    }
  }

  #isCrd(type: ResourceType): boolean {
    return type.group === 'apiextensions.k8s.io' && type.kind === 'CustomResourceDefinition';
  }

  #update(input: KubeObject, options: WriteOptions & { managed?: boolean }): KubeObject {
    const type = this.#type(input.apiVersion, input.kind);
    this.#checkStored(type, 'update');
    const name = input.metadata.name ?? '';
    if (!name) throw invalid(type, '', [{ field: 'metadata.name', message: 'Required value: name is required', reason: 'FieldValueRequired' }]);
    const namespace = type.namespaced ? input.metadata.namespace || 'default' : undefined;
    if (options.subresource === 'status' && !type.statusSubresource) throw resourceNotServed(`${type.plural} have no status subresource`);
    const existing = this.#raw(type, namespace, name);
    if (!existing) throw notFound(type, name);
    const wanted = input.metadata.resourceVersion;
    if (wanted && wanted !== existing.metadata.resourceVersion) throw conflict(type, name);

    let next: KubeObject;
    if (options.subresource === 'status') {
      // /status writes change status only; metadata and spec stay as stored.
      next = structuredClone(existing);
      if (input.status === undefined) delete next.status;
      else next.status = input.status;
    } else {
      next = input;
      next.metadata = this.#carrySystemMetadata(existing.metadata, input.metadata);
      if (type.statusSubresource) {
        if (existing.status === undefined) delete next.status;
        else next.status = structuredClone(existing.status);
      }
      if (type.group === '' && type.kind === 'Namespace') next.spec = structuredClone(existing.spec);
    }
    next = this.#admit(next, this.#admissionContext('UPDATE', type, existing, options.subresource));
    next.metadata = this.#carrySystemMetadata(existing.metadata, next.metadata);
    const now = this.#now();
    if (options.fieldManager && !options.managed) next = recordUpdateManager(this.#out(existing, type), next, options.fieldManager, 'Update', now);
    next.metadata.generation = (existing.metadata.generation ?? 1) + (isDeepStrictEqual(specPart(next), specPart(existing)) ? 0 : 1);
    next.metadata.resourceVersion = existing.metadata.resourceVersion;
    if (sameContent(next, existing)) return this.#out(existing, type);
    if (options.dryRun) return this.#out(next, type);

    if (existing.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) {
      const removed = this.#commit(type, 'DELETED', next, existing);
      this.#afterRemoval(type, removed);
      return this.#out(removed, type);
    }
    const stored = this.#commit(type, 'MODIFIED', next, existing);
    if (this.#isCrd(type)) this.registry.registerCrd(stored);
    return this.#out(stored, type);
  }

  /** Identity and lifecycle fields are the server's; clients cannot change them by update. */
  #carrySystemMetadata(existing: ObjectMeta, incoming: ObjectMeta): ObjectMeta {
    const meta: ObjectMeta = { ...incoming };
    meta.name = existing.name;
    if (existing.namespace === undefined) delete meta.namespace;
    else meta.namespace = existing.namespace;
    meta.uid = existing.uid;
    meta.creationTimestamp = existing.creationTimestamp;
    for (const field of ['deletionTimestamp', 'deletionGracePeriodSeconds', 'generation'] as const) {
      if (existing[field] === undefined) delete meta[field];
      else (meta as Record<string, unknown>)[field] = existing[field];
    }
    delete meta.generateName;
    if (existing.generateName !== undefined) meta.generateName = existing.generateName;
    // An update that omits managedFields keeps them (kube-apiserver does the same).
    if (incoming.managedFields === undefined && existing.managedFields !== undefined) meta.managedFields = structuredClone(existing.managedFields);
    return meta;
  }

  #patch(apiVersion: string, kind: string, namespace: string | undefined, name: string, patchType: PatchType, patch: unknown, options: WriteOptions): KubeObject {
    const type = this.#type(apiVersion, kind);
    this.#checkStored(type, 'patch');
    if (options.subresource === 'status' && !type.statusSubresource) throw resourceNotServed(`${type.plural} have no status subresource`);
    const ns = type.namespaced ? namespace || 'default' : undefined;
    const existing = this.#raw(type, ns, name);
    if (!existing && patchType !== 'apply') throw notFound(type, name);
    const now = this.#now();
    const live = existing ? this.#out(existing, type) : undefined;
    if (live) checkPatchKeepsKind(patchType, patch, live);
    const result = checkShape(
      applyPatch(patchType, live, patch, {
        resourceType: type,
        ...(options.fieldManager ? { fieldManager: options.fieldManager } : {}),
        ...(options.force ? { force: options.force } : {}),
        now,
      }),
    );
    if (result.metadata.name !== undefined && result.metadata.name !== name) {
      throw invalid(type, name, [{ field: 'metadata.name', message: `Invalid value: "${result.metadata.name}": field is immutable` }]);
    }
    if (type.namespaced && result.metadata.namespace && result.metadata.namespace !== ns) {
      throw badRequest(`the namespace of the object (${result.metadata.namespace}) does not match the namespace on the request (${ns ?? ''})`);
    }
    result.metadata.name = name;
    if (ns) result.metadata.namespace = ns;
    result.apiVersion = apiVersion;
    result.kind = kind;
    if (!existing) {
      if (options.subresource === 'status') throw notFound(type, name);
      return this.#create(result, { ...options, managed: true });
    }
    const managed = patchType === 'apply' || !options.fieldManager;
    const recorded = managed || !live ? result : recordUpdateManager(live, result, options.fieldManager ?? '', 'Update', now);
    return this.#update(recorded, { ...options, managed: true });
  }

  // ---- internals: deletion, finalizers, garbage collection -------------------------------

  #delete(type: ResourceType, existing: KubeObject, policy: 'Foreground' | 'Background' | 'Orphan', gracePeriodSeconds?: number): KubeObject {
    if (type.group === '' && type.kind === 'Namespace') return this.#deleteNamespace(type, existing);
    const uid = existing.metadata.uid ?? '';
    if (policy === 'Orphan') this.#orphanDependents(uid);
    if (policy === 'Foreground' && this.#dependentsOf(uid).length > 0) {
      let current = existing;
      if (!(existing.metadata.finalizers ?? []).includes(FOREGROUND) || !existing.metadata.deletionTimestamp) {
        const marked = structuredClone(existing);
        marked.metadata.finalizers = [...new Set([...(existing.metadata.finalizers ?? []), FOREGROUND])];
        marked.metadata.deletionTimestamp ??= timestamp(this.#now());
        marked.metadata.deletionGracePeriodSeconds ??= 0;
        current = this.#commit(type, 'MODIFIED', marked, existing);
      }
      for (const dependent of this.#dependentsOf(uid)) {
        if (!dependent.object.metadata.deletionTimestamp) this.#delete(dependent.type, dependent.object, 'Foreground');
      }
      return this.#completeForeground(uid) ?? current;
    }
    const grace = this.#podGracePeriod(type, existing, gracePeriodSeconds);
    if (grace !== undefined) {
      // Already terminating: only a shorter grace period (the kubelet's 0) changes anything.
      if (existing.metadata.deletionTimestamp && grace > 0) return existing;
      if (!existing.metadata.deletionTimestamp) {
        const marked = structuredClone(existing);
        marked.metadata.deletionTimestamp = timestamp(new Date(this.#now().getTime() + grace * 1000));
        marked.metadata.deletionGracePeriodSeconds = grace;
        return this.#commit(type, 'MODIFIED', marked, existing);
      }
    }
    if ((existing.metadata.finalizers ?? []).length > 0) {
      if (existing.metadata.deletionTimestamp) return existing;
      const marked = structuredClone(existing);
      marked.metadata.deletionTimestamp = timestamp(this.#now());
      marked.metadata.deletionGracePeriodSeconds = gracePeriodSeconds ?? 0;
      return this.#commit(type, 'MODIFIED', marked, existing);
    }
    const removed = this.#commit(type, 'DELETED', structuredClone(existing), existing);
    this.#afterRemoval(type, removed);
    return removed;
  }

  /**
   * The grace period a Pod deletion gets, or undefined when it is removed at once (graceful
   * deletion off, not a Pod, not bound to an existing Node — nobody would finish it — or the
   * kubelet's own final delete with 0).
   */
  #podGracePeriod(type: ResourceType, pod: KubeObject, requested: number | undefined): number | undefined {
    if (!this.#gracefulPodDeletion || type.group !== '' || type.kind !== 'Pod') return undefined;
    const spec = (pod.spec ?? {}) as { nodeName?: unknown; terminationGracePeriodSeconds?: unknown };
    if (typeof spec.nodeName !== 'string' || !spec.nodeName || !this.#raw(this.#type('v1', 'Node'), undefined, spec.nodeName)) return undefined;
    const grace = requested ?? (typeof spec.terminationGracePeriodSeconds === 'number' ? spec.terminationGracePeriodSeconds : 30);
    if (grace <= 0) return pod.metadata.deletionTimestamp ? 0 : undefined;
    return grace;
  }

  #dependentsOf(uid: string): Array<{ type: ResourceType; object: KubeObject }> {
    if (!uid) return [];
    const out: Array<{ type: ResourceType; object: KubeObject }> = [];
    for (const bucket of this.#objects.values()) {
      for (const object of bucket.values()) {
        if (!(object.metadata.ownerReferences ?? []).some((ref) => ref.uid === uid)) continue;
        const type = this.registry.byKind(object.apiVersion, object.kind);
        if (type) out.push({ type, object });
      }
    }
    return out;
  }

  #orphanDependents(uid: string): void {
    for (const { type, object } of this.#dependentsOf(uid)) {
      const next = structuredClone(object);
      next.metadata.ownerReferences = (object.metadata.ownerReferences ?? []).filter((ref) => ref.uid !== uid);
      if (next.metadata.ownerReferences.length === 0) delete next.metadata.ownerReferences;
      this.#commit(type, 'MODIFIED', next, object);
    }
  }

  /** Removes the owner's foregroundDeletion finalizer once its dependents are gone; returns the owner's new state. */
  #completeForeground(ownerUid: string): KubeObject | undefined {
    const owner = this.#byUidLookup(ownerUid);
    if (!owner) return undefined;
    const { type, object } = owner;
    if (!object.metadata.deletionTimestamp || !(object.metadata.finalizers ?? []).includes(FOREGROUND)) return undefined;
    if (this.#dependentsOf(ownerUid).length > 0) return undefined;
    const next = structuredClone(object);
    next.metadata.finalizers = (object.metadata.finalizers ?? []).filter((f) => f !== FOREGROUND);
    if (next.metadata.finalizers.length > 0) return this.#commit(type, 'MODIFIED', next, object);
    delete next.metadata.finalizers;
    const removed = this.#commit(type, 'DELETED', next, object);
    this.#afterRemoval(type, removed);
    return removed;
  }

  /** What the garbage collector, namespace controller and CRD controller do after an object goes. */
  #afterRemoval(type: ResourceType, removed: KubeObject): void {
    const uid = removed.metadata.uid ?? '';
    // Background GC: a dependent goes when none of its owners remain; otherwise it loses the dangling reference.
    for (const dependent of this.#dependentsOf(uid)) {
      const current = this.#raw(dependent.type, dependent.object.metadata.namespace, dependent.object.metadata.name ?? '');
      if (!current || current.metadata.uid !== dependent.object.metadata.uid) continue;
      const remaining = (current.metadata.ownerReferences ?? []).filter((ref) => ref.uid !== uid && this.#byUidLookup(ref.uid));
      if (remaining.length === 0) {
        if (!current.metadata.deletionTimestamp) this.#delete(dependent.type, current, 'Background');
      } else {
        const next = structuredClone(current);
        next.metadata.ownerReferences = (current.metadata.ownerReferences ?? []).filter((ref) => ref.uid !== uid);
        this.#commit(dependent.type, 'MODIFIED', next, current);
      }
    }
    for (const ref of removed.metadata.ownerReferences ?? []) this.#completeForeground(ref.uid);
    if (type.namespaced && removed.metadata.namespace) this.#finishNamespaceIfEmpty(removed.metadata.namespace);
    if (this.#isCrd(type)) {
      const types = this.registry.unregisterCrd(removed.metadata.name ?? '');
      const first = types[0];
      if (first && !this.registry.isBuiltinKind(first.group, first.kind)) {
        for (const object of [...this.#bucket(first).values()]) this.#commit(first, 'DELETED', structuredClone(object), object);
      }
    }
  }

  #deleteNamespace(type: ResourceType, existing: KubeObject): KubeObject {
    const name = existing.metadata.name ?? '';
    let current = existing;
    if (!existing.metadata.deletionTimestamp) {
      const marked = structuredClone(existing);
      marked.metadata.deletionTimestamp = timestamp(this.#now());
      marked.metadata.deletionGracePeriodSeconds = 0;
      marked.status = { ...((existing.status as object | undefined) ?? {}), phase: 'Terminating' };
      current = this.#commit(type, 'MODIFIED', marked, existing);
    }
    if (this.#namespaceCascadeDelayMs === 0) return this.#cascadeNamespace(name) ?? this.#raw(type, undefined, name) ?? current;
    if (!this.#cascades.has(name)) {
      const timer = setTimeout(() => {
        this.#cascades.delete(name);
        try {
          this.#cascadeNamespace(name);
        } catch (err) {
          this.#log?.error({ err, namespace: name }, 'deleting the contents of a terminating namespace failed');
        }
      }, this.#namespaceCascadeDelayMs);
      timer.unref();
      this.#cascades.set(name, timer);
    }
    return current;
  }

  /** The namespace controller's job: delete everything in a terminating namespace, then the namespace. */
  #cascadeNamespace(name: string): KubeObject | undefined {
    for (const bucket of [...this.#objects.values()]) {
      for (const object of [...bucket.values()]) {
        if (object.metadata.namespace !== name || object.metadata.deletionTimestamp) continue;
        const objectType = this.registry.byKind(object.apiVersion, object.kind);
        // GC of an earlier object may already have removed this one.
        if (objectType && this.#raw(objectType, name, object.metadata.name ?? '')?.metadata.uid === object.metadata.uid) this.#delete(objectType, object, 'Background');
      }
    }
    return this.#finishNamespaceIfEmpty(name);
  }

  #finishNamespaceIfEmpty(name: string): KubeObject | undefined {
    const type = this.#type('v1', 'Namespace');
    const namespace = this.#raw(type, undefined, name);
    if (!namespace?.metadata.deletionTimestamp || (namespace.metadata.finalizers ?? []).length > 0) return undefined;
    for (const bucket of this.#objects.values()) for (const object of bucket.values()) if (object.metadata.namespace === name) return undefined;
    const next = structuredClone(namespace);
    next.spec = { ...((namespace.spec as object | undefined) ?? {}), finalizers: [] };
    return this.#commit(type, 'DELETED', next, namespace);
  }

  // ---- internals: watch delivery ----------------------------------------------------------

  /** Translates a logged change for one watcher: selector entry/exit become ADDED/DELETED. */
  #enqueue(subscriber: Subscriber, event: LoggedEvent): void {
    const now = matchesSelector(subscriber.selector, event.object);
    const before = event.previous !== undefined && matchesSelector(subscriber.selector, event.previous);
    let type: 'ADDED' | 'MODIFIED' | 'DELETED' | undefined;
    if (event.type === 'ADDED') type = now ? 'ADDED' : undefined;
    else if (event.type === 'DELETED') type = now || before ? 'DELETED' : undefined;
    else if (now && before) type = 'MODIFIED';
    else if (now) type = 'ADDED';
    else if (before) type = 'DELETED';
    if (type) subscriber.queue.push({ type, object: this.#out(event.object, subscriber.type) });
  }

  #bookmark(subscriber: Subscriber): void {
    const apiVersion = apiVersionOf(subscriber.type.group, subscriber.type.version);
    subscriber.queue.push({ type: 'BOOKMARK', object: { apiVersion, kind: subscriber.type.kind, metadata: { resourceVersion: this.currentResourceVersion() } } });
    this.#schedule(subscriber);
  }

  /** Deliveries run on a later microtask, never inside the write, in queue order. */
  #schedule(subscriber: Subscriber): void {
    if (subscriber.scheduled || subscriber.closed || subscriber.queue.length === 0) return;
    subscriber.scheduled = true;
    queueMicrotask(() => {
      subscriber.scheduled = false;
      while (!subscriber.closed && subscriber.queue.length > 0) {
        const event = subscriber.queue.shift() as WatchEvent;
        try {
          subscriber.onEvent(event);
        } catch (err) {
          this.#log?.warn({ err, kind: subscriber.type.kind }, 'a watch handler threw; the event is dropped for that watcher');
        }
      }
    });
  }

  #unsubscribe(subscriber: Subscriber): void {
    subscriber.closed = true;
    subscriber.queue.length = 0;
    if (subscriber.timer) clearInterval(subscriber.timer);
    this.#subscribers.delete(subscriber);
  }
}

export function createMemoryStore(options: MemoryStoreOptions = {}): MemoryStore {
  return new InMemoryClusterStore(options);
}
