/**
 * The contract between the sandbox's embedded API server and everything that runs beside it
 * in the same process (controllers, kubelets, the sandbox CLI daemon). Objects are plain JSON
 * exactly as they travel over HTTP; the HTTP layer is a thin translation of these calls, so an
 * in-process caller sees the same validation, admission, resourceVersion and watch semantics
 * as `kubectl` does.
 *
 * Invariants of every `ClusterStore`:
 * - resourceVersion is one global, strictly increasing counter (decimal string); every write
 *   (create, update, patch, delete, status change, GC) takes the next value.
 * - Writes are synchronous and atomic; a failed write changes nothing and throws `ApiError`.
 * - Watch events are delivered asynchronously (never from inside the write call), in
 *   resourceVersion order, exactly once per subscriber.
 * - Returned objects are deep copies: mutating them never changes the store.
 */

/** https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/ */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time?: string;
  fieldsType?: 'FieldsV1';
  fieldsV1?: Record<string, unknown>;
  subresource?: string;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: ManagedFieldsEntry[];
}

/** Any Kubernetes object. `spec`/`status` shapes are kind-specific and left open here. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface KubeList<T extends KubeObject = KubeObject> {
  apiVersion: string;
  kind: string;
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

/** A resource the server serves: built in, or registered at run time from a CRD. */
export interface ResourceType {
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  listKind: string;
  /** Lower-case plural used in URLs, e.g. 'deployments'. */
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  verbs: string[];
  /** Has a `/status` subresource: the main endpoint ignores status, `/status` ignores the rest. */
  statusSubresource: boolean;
}

/** `metav1.Status`, the body of every error response. */
export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message: string;
  /** e.g. 'NotFound', 'AlreadyExists', 'Conflict', 'Invalid', 'BadRequest', 'Gone'. */
  reason: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes?: Array<{ reason?: string; message: string; field?: string }>;
    retryAfterSeconds?: number;
  };
  code: number;
}

/** An API failure: carries the Status the HTTP layer sends as-is. */
export class ApiError extends Error {
  readonly status: StatusBody;

  constructor(code: number, reason: string, message: string, details?: StatusBody['details']) {
    super(message);
    this.name = 'ApiError';
    this.status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code, ...(details ? { details } : {}) };
  }

  get code(): number {
    return this.status.code;
  }
  get reason(): string {
    return this.status.reason;
  }
}

export interface ListOptions {
  namespace?: string;
  /** Kubernetes label selector syntax: `a=b,c!=d,e in (x,y),!f,g`. */
  labelSelector?: string;
  /** `metadata.name=x,metadata.namespace=y,spec.nodeName=z` (also `!=`). */
  fieldSelector?: string;
}

export interface WatchOptions extends ListOptions {
  /**
   * Start after this resourceVersion (replaying later events from the bounded event log);
   * '' or undefined or '0' starts with synthetic ADDED events for the current state.
   * A version older than the log throws ApiError 410 'Expired'.
   */
  resourceVersion?: string;
  allowBookmarks?: boolean;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchEvent<T extends KubeObject = KubeObject> {
  type: WatchEventType;
  object: T;
}

export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';

export interface WriteOptions {
  fieldManager?: string;
  /** Only for 'apply': take ownership of conflicting fields instead of failing with 409. */
  force?: boolean;
  /** Write the `status` subresource. */
  subresource?: 'status';
  dryRun?: boolean;
}

export interface DeleteOptions {
  propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}

export interface ClusterStore {
  /** The resource type serving `apiVersion`/`kind`, or undefined. */
  resourceType(apiVersion: string, kind: string): ResourceType | undefined;
  get<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string): T | undefined;
  list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, options?: ListOptions): KubeList<T>;
  /** `metadata.generateName` is honoured; a missing namespace for a namespaced kind is 'default'. */
  create<T extends KubeObject = KubeObject>(object: T, options?: WriteOptions): T;
  /** Replaces the object; a set `metadata.resourceVersion` must match (else 409 Conflict). */
  update<T extends KubeObject = KubeObject>(object: T, options?: WriteOptions): T;
  patch<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string, type: PatchType, patch: unknown, options?: WriteOptions): T;
  /**
   * Deletes now, or sets `deletionTimestamp` when finalizers remain (the object goes once the
   * last finalizer is removed). Dependents are garbage-collected per `propagationPolicy`
   * (default Background); deleting a Namespace deletes everything in it.
   */
  delete<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string, options?: DeleteOptions): T;
  /**
   * Subscribe to changes; returns the function that stops the watch. `onEvent` receives
   * ADDED/MODIFIED/DELETED (and BOOKMARK when asked). An ApiError (410) is thrown synchronously
   * when `resourceVersion` is too old.
   */
  watch<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, options: WatchOptions, onEvent: (event: WatchEvent<T>) => void): () => void;
  /** The latest resourceVersion handed out. */
  currentResourceVersion(): string;
}
