/**
 * A watch over HTTP: a chunked `application/json` stream of `{"type":…,"object":…}` lines, as
 * kube-apiserver sends them. A resourceVersion too old for the event log is not an HTTP error:
 * like kube-apiserver, the stream opens and carries one ERROR event with a 410 Status, which is
 * what client-go and client-node informers react to by re-listing.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { apiVersionOf } from './registry.js';
import { toTable, type IncludeObject } from './table.js';
import { ApiError, type ClusterStore, type KubeObject, type ResourceType, type WatchEvent } from './types.js';

/** kube-apiserver's default --min-request-timeout: watches end after about this long. */
export const DEFAULT_WATCH_TIMEOUT_SECONDS = 1800;

export interface WatchRequest {
  type: ResourceType;
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  allowBookmarks: boolean;
  timeoutSeconds?: number;
  /** WatchList (KEP-3157): initial state as ADDED events, then a BOOKMARK marking their end. */
  sendInitialEvents: boolean;
  table?: { includeObject: IncludeObject; now: () => Date };
}

function render(request: WatchRequest, event: WatchEvent): string {
  if (!request.table || event.type === 'BOOKMARK' || event.type === 'ERROR') return `${JSON.stringify(event)}\n`;
  const table = toTable(request.type.group, request.type.kind, [event.object], {
    resourceVersion: event.object.metadata.resourceVersion ?? '',
    now: request.table.now(),
    includeObject: request.table.includeObject,
  });
  return `${JSON.stringify({ type: event.type, object: table })}\n`;
}

/** Serves one watch until the client goes, the timeout passes, or the store refuses it. */
export function serveWatch(store: ClusterStore, request: WatchRequest, res: ServerResponse, log: Logger): void {
  const apiVersion = apiVersionOf(request.type.group, request.type.version);
  const selection = {
    ...(request.namespace ? { namespace: request.namespace } : {}),
    ...(request.labelSelector ? { labelSelector: request.labelSelector } : {}),
    ...(request.fieldSelector ? { fieldSelector: request.fieldSelector } : {}),
  };
  const pending: string[] = [];
  let resourceVersion = request.resourceVersion;
  if (request.sendInitialEvents) {
    // List and subscribe in the same tick: nothing can be written in between.
    const list = store.list(apiVersion, request.type.kind, selection);
    for (const object of list.items) pending.push(render(request, { type: 'ADDED', object }));
    const end: KubeObject = { apiVersion, kind: request.type.kind, metadata: { resourceVersion: list.metadata.resourceVersion, annotations: { 'k8s.io/initial-events-end': 'true' } } };
    pending.push(render(request, { type: 'BOOKMARK', object: end }));
    resourceVersion = list.metadata.resourceVersion;
  }
  let stop: (() => void) | undefined;
  let expired: ApiError | undefined;
  try {
    stop = store.watch(apiVersion, request.type.kind, { ...selection, ...(resourceVersion ? { resourceVersion } : {}), allowBookmarks: request.allowBookmarks }, (event) => {
      if (!res.writableEnded) res.write(render(request, event));
    });
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== 410) throw err;
    expired = err;
  }
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
  res.flushHeaders();
  for (const line of pending) res.write(line);
  if (expired) {
    res.end(`${JSON.stringify({ type: 'ERROR', object: expired.status })}\n`);
    return;
  }
  const timeout = setTimeout(() => res.end(), (request.timeoutSeconds ?? DEFAULT_WATCH_TIMEOUT_SECONDS) * 1000);
  timeout.unref();
  const finish = (): void => {
    clearTimeout(timeout);
    stop?.();
    stop = undefined;
  };
  // Not req 'close': since Node 16 it fires once the request body is read, not on disconnect.
  res.on('close', finish);
  log.debug({ kind: request.type.kind, namespace: request.namespace, resourceVersion }, 'watch started');
}
