/**
 * The Kubernetes REST API over HTTPS, a thin translation onto a `ClusterStore` (types.ts):
 * discovery, OpenAPI v3 (enough for kubectl's server-side field validation), CRUD, patch,
 * status subresources, watch, server-side Table printing and TokenReview.
 *
 * Invariants: every response to an API path is JSON; every failure is a `Status` with the HTTP
 * code in it; nothing a client sends can throw out of the handler (unexpected exceptions
 * become 500 Status and are logged). Authentication is a bearer token checked by the injected
 * `authenticate`; there is no authorization — every authenticated user may do everything.
 */
import { createServer, type Server } from 'node:https';
import { STATUS_CODES, type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { badRequest, internalError, methodNotAllowed, notFound, resourceNotServed, unauthorized } from './api-errors.js';
import { apiGroup, apiGroupList, apiResourceList, apiVersions, SERVER_VERSION } from './discovery.js';
import { crdTopLevelFields, parseFieldValidation, unknownFields, type FieldValidation } from './field-validation.js';
import { openApiGroupVersion, openApiRoot } from './openapi.js';
import { applyPatch } from './patch/index.js';
import { apiVersionOf, type ResourceRegistry } from './registry.js';
import { decodeObjectBody, decodeOptionalJson, decodePatchBody, MAX_BODY_BYTES, readBody } from './request-body.js';
import { parseRoute, type ResourceRoute } from './routes.js';
import { hasScaleSubresource, replicasOf, toScale } from './scale-subresource.js';
import { toTable, wantsTable, type IncludeObject } from './table.js';
import type { UserInfo } from './tokens.js';
import { ApiError, type ClusterStore, type DeleteOptions, type KubeObject, type ResourceType, type WriteOptions } from './types.js';
import { serveWatch } from './watch-stream.js';
import { silentLogger } from '../../telemetry/logger.js';

export interface AuthenticationResult {
  authenticated: boolean;
  user?: UserInfo;
  audiences?: string[];
  error?: string;
}

export interface ApiRequestHandlerOptions {
  store: ClusterStore & { readonly registry: ResourceRegistry };
  /** Checks a bearer token; called for every request except health and version probes. */
  authenticate: (token: string, req: IncomingMessage) => AuthenticationResult | Promise<AuthenticationResult>;
  /** Answers `POST /apis/authentication.k8s.io/v1/tokenreviews`. */
  tokenReview: (token: string, audiences?: string[]) => AuthenticationResult | Promise<AuthenticationResult>;
  log?: Logger;
  now?: () => Date;
  maxBodyBytes?: number;
}

export interface ApiServerOptions extends ApiRequestHandlerOptions {
  tls: { cert: string; key: string };
}

const UNAUTHENTICATED = new Set(['version', 'healthz', 'readyz', 'livez']);

/** The autoscaling/v1 Scale as the patch module sees it (no status subresource, no lists). */
const SCALE_TYPE: ResourceType = {
  group: 'autoscaling',
  version: 'v1',
  kind: 'Scale',
  listKind: 'ScaleList',
  plural: 'scales',
  singular: 'scale',
  namespaced: true,
  shortNames: [],
  categories: [],
  verbs: ['get', 'patch', 'update'],
  statusSubresource: false,
};

function sendJson(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, err: ApiError): void {
  sendJson(res, err.code, err.status, err.code === 413 ? { Connection: 'close' } : {});
}

function queryFlag(query: URLSearchParams, name: string): boolean {
  const value = query.get(name);
  return value === 'true' || value === '1';
}

function queryInt(query: URLSearchParams, name: string): number | undefined {
  const value = query.get(name);
  if (value === null || value === '') return undefined;
  if (!/^-?\d+$/.test(value)) throw badRequest(`invalid value for query parameter ${name}: "${value}" is not an integer`);
  return Number(value);
}

function dryRunOf(query: URLSearchParams): boolean {
  const values = query.getAll('dryRun');
  for (const v of values) if (v !== 'All' && v !== '') throw badRequest(`invalid dryRun value "${v}": only "All" is supported`);
  return values.includes('All');
}

function includeObjectOf(query: URLSearchParams): IncludeObject {
  const value = query.get('includeObject');
  return value === 'None' || value === 'Object' ? value : 'Metadata';
}

/** kube-apiserver names unnamed field managers after the client's User-Agent program name. */
function defaultFieldManager(req: IncomingMessage): string {
  const agent = req.headers['user-agent'] ?? '';
  return agent.split('/')[0]?.trim().slice(0, 128) || 'unknown';
}

function asObject(value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw badRequest(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

export function createApiRequestHandler(options: ApiRequestHandlerOptions): RequestListener {
  const { store } = options;
  const log = options.log ?? silentLogger;
  const now = options.now ?? (() => new Date());
  const maxBody = options.maxBodyBytes ?? MAX_BODY_BYTES;
  const registry = store.registry;

  /** Strict → 400, Warn → Warning headers, Ignore → nothing. Returns the warnings to send. */
  function checkFields(type: ResourceType, body: Record<string, unknown>, validation: FieldValidation): string[] {
    if (validation === 'Ignore') return [];
    let extra: string[] = [];
    if (!registry.isBuiltinKind(type.group, type.kind)) {
      const crd = store.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, `${type.plural}.${type.group}`);
      const fields = crdTopLevelFields(crd, type.version);
      if (fields === 'any') extra = Object.keys(body);
      else extra = fields;
    }
    const unknown = unknownFields(type, body, extra);
    if (unknown.length === 0) return [];
    if (validation === 'Strict') throw badRequest(`strict decoding error: ${unknown.join(', ')}`);
    return unknown;
  }

  function warningHeaders(warnings: string[]): Record<string, string> {
    return warnings.length ? { Warning: warnings.map((w) => `299 - ${JSON.stringify(w)}`).join(', ') } : {};
  }

  /** Fills apiVersion/kind/namespace from the URL and rejects contradictions (as kube-apiserver does). */
  function objectFromBody(route: ResourceRoute, type: ResourceType, raw: unknown): KubeObject {
    const body = asObject(raw, `the ${type.kind} in the request body`);
    const apiVersion = apiVersionOf(type.group, type.version);
    if (body.apiVersion === undefined) body.apiVersion = apiVersion;
    if (body.kind === undefined) body.kind = type.kind;
    if (body.apiVersion !== apiVersion) throw badRequest(`the API version in the data (${String(body.apiVersion)}) does not match the expected API version (${apiVersion})`);
    if (body.kind !== type.kind) throw badRequest(`the kind in the data (${String(body.kind)}) does not match the expected kind (${type.kind})`);
    if (body.metadata === undefined) body.metadata = {};
    const meta = asObject(body.metadata, 'metadata');
    if (type.namespaced) {
      if (meta.namespace === undefined || meta.namespace === '') meta.namespace = route.namespace;
      else if (meta.namespace !== route.namespace) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    if (route.name !== undefined) {
      if (meta.name === undefined || meta.name === '') meta.name = route.name;
      else if (meta.name !== route.name) throw badRequest(`the name of the object (${String(meta.name)}) does not match the name on the URL (${route.name})`);
    }
    return body as KubeObject;
  }

  async function tokenReview(req: IncomingMessage, res: ServerResponse, type: ResourceType, query: URLSearchParams): Promise<void> {
    const body = objectFromBody({ kind: 'resource', group: type.group, version: type.version, plural: type.plural, watch: false }, type, decodeObjectBody(await readBody(req, maxBody), req.headers['content-type']));
    const spec = (body.spec ?? {}) as { token?: unknown; audiences?: unknown };
    if (typeof spec.token !== 'string' || spec.token === '') {
      throw new ApiError(422, 'Invalid', 'TokenReview.authentication.k8s.io "" is invalid: spec.token: Required value', {
        kind: 'TokenReview',
        group: type.group,
        causes: [{ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.token' }],
      });
    }
    const audiences = Array.isArray(spec.audiences) ? spec.audiences.filter((a): a is string => typeof a === 'string') : undefined;
    const result = await options.tokenReview(spec.token, audiences && audiences.length ? audiences : undefined);
    const status = {
      authenticated: result.authenticated,
      ...(result.user ? { user: result.user } : {}),
      ...(result.audiences ? { audiences: result.audiences } : {}),
      ...(result.error ? { error: result.error } : {}),
    };
    void query;
    sendJson(res, 201, { apiVersion: apiVersionOf(type.group, type.version), kind: 'TokenReview', metadata: { creationTimestamp: null }, spec: body.spec, status });
  }

  /** `kubectl scale`: GET/PUT/PATCH an autoscaling/v1 Scale, written back as a merge patch of spec.replicas. */
  async function serveScale(req: IncomingMessage, res: ServerResponse, type: ResourceType, namespace: string | undefined, name: string, query: URLSearchParams): Promise<void> {
    const apiVersion = apiVersionOf(type.group, type.version);
    const current = store.get(apiVersion, type.kind, namespace, name);
    if (!current) throw notFound(type, name);
    const method = req.method ?? 'GET';
    if (method === 'GET') return sendJson(res, 200, toScale(current));
    let replicas: number;
    let resourceVersion: string | undefined;
    if (method === 'PUT') {
      const body = decodeObjectBody(await readBody(req, maxBody), req.headers['content-type']);
      replicas = replicasOf(body, name);
      const meta = (body as { metadata?: { resourceVersion?: unknown } }).metadata;
      if (typeof meta?.resourceVersion === 'string' && meta.resourceVersion) resourceVersion = meta.resourceVersion;
    } else if (method === 'PATCH') {
      const { type: patchType, patch } = decodePatchBody(await readBody(req, maxBody), req.headers['content-type']);
      if (patchType === 'apply') throw new ApiError(415, 'UnsupportedMediaType', 'server-side apply is not supported on the scale subresource; use a merge patch');
      // A Scale has no lists, so a strategic merge patch is a plain merge patch.
      const scaled = applyPatch(patchType === 'json' ? 'json' : 'merge', toScale(current), patch, { resourceType: SCALE_TYPE, now: now() });
      replicas = replicasOf(scaled, name);
    } else {
      throw methodNotAllowed(`the method ${method} is not supported on ${type.plural}/scale`);
    }
    const result = store.patch(apiVersion, type.kind, namespace, name, 'merge', { metadata: resourceVersion ? { resourceVersion } : {}, spec: { replicas } }, {
      fieldManager: query.get('fieldManager') || defaultFieldManager(req),
      ...(dryRunOf(query) ? { dryRun: true } : {}),
    });
    sendJson(res, 200, toScale(result));
  }

  async function serveResource(req: IncomingMessage, res: ServerResponse, route: ResourceRoute, query: URLSearchParams): Promise<void> {
    const type = registry.byPlural(route.group, route.version, route.plural);
    if (!type) throw resourceNotServed();
    if (route.namespace !== undefined && !type.namespaced) throw resourceNotServed();
    const scale = route.subresource === 'scale' && hasScaleSubresource(type) && route.name !== undefined;
    if (route.subresource !== undefined && !(route.subresource === 'status' && type.statusSubresource) && !scale) throw resourceNotServed();
    const apiVersion = apiVersionOf(type.group, type.version);
    const method = req.method ?? 'GET';
    const namespace = type.namespaced ? route.namespace : undefined;
    const subresource = route.subresource === 'status' ? ('status' as const) : undefined;
    const table = wantsTable(req.headers.accept);

    if (type.group === 'authentication.k8s.io' && type.kind === 'TokenReview') {
      if (method !== 'POST' || route.name !== undefined) throw methodNotAllowed(`only create (POST) is supported for ${type.plural}.${type.group}`);
      return tokenReview(req, res, type, query);
    }

    if (scale && route.name !== undefined) return serveScale(req, res, type, namespace, route.name, query);

    if (method === 'GET' && (route.watch || queryFlag(query, 'watch'))) {
      const timeoutSeconds = queryInt(query, 'timeoutSeconds');
      const fieldSelectors = [query.get('fieldSelector'), route.name !== undefined ? `metadata.name=${route.name}` : ''].filter((s): s is string => !!s);
      const labelSelector = query.get('labelSelector');
      const resourceVersion = query.get('resourceVersion');
      serveWatch(
        store,
        {
          type,
          ...(namespace ? { namespace } : {}),
          ...(labelSelector ? { labelSelector } : {}),
          ...(fieldSelectors.length ? { fieldSelector: fieldSelectors.join(',') } : {}),
          ...(resourceVersion ? { resourceVersion } : {}),
          allowBookmarks: queryFlag(query, 'allowWatchBookmarks'),
          ...(timeoutSeconds !== undefined && timeoutSeconds > 0 ? { timeoutSeconds } : {}),
          sendInitialEvents: queryFlag(query, 'sendInitialEvents'),
          ...(table ? { table: { includeObject: includeObjectOf(query), now } } : {}),
        },
        res,
        log,
      );
      return;
    }

    const respond = (code: number, objects: KubeObject | KubeObject[], list?: { apiVersion: string; kind: string; resourceVersion: string }, headers: Record<string, string> = {}): void => {
      if (table) {
        const items = Array.isArray(objects) ? objects : [objects];
        const resourceVersion = list?.resourceVersion ?? (Array.isArray(objects) ? store.currentResourceVersion() : (objects.metadata.resourceVersion ?? ''));
        sendJson(res, code, toTable(type.group, type.kind, items, { resourceVersion, now: now(), includeObject: includeObjectOf(query) }), headers);
        return;
      }
      if (Array.isArray(objects)) {
        sendJson(res, code, { apiVersion: list?.apiVersion ?? apiVersion, kind: list?.kind ?? type.listKind, metadata: { resourceVersion: list?.resourceVersion ?? store.currentResourceVersion() }, items: objects }, headers);
      } else sendJson(res, code, objects, headers);
    };
    const writeOptions = (): WriteOptions => ({
      fieldManager: query.get('fieldManager') || defaultFieldManager(req),
      ...(queryFlag(query, 'force') ? { force: true } : {}),
      ...(subresource ? { subresource } : {}),
      ...(dryRunOf(query) ? { dryRun: true } : {}),
    });
    const fieldValidation = (): FieldValidation => {
      const validation = parseFieldValidation(query.get('fieldValidation'));
      if (!validation) throw badRequest(`fieldValidation must be one of Ignore, Warn or Strict (got "${query.get('fieldValidation') ?? ''}")`);
      return validation;
    };

    switch (method) {
      case 'GET': {
        if (route.name !== undefined) {
          const object = store.get(apiVersion, type.kind, namespace, route.name);
          if (!object) throw notFound(type, route.name);
          return respond(200, object);
        }
        const labelSelector = query.get('labelSelector');
        const fieldSelector = query.get('fieldSelector');
        const list = store.list(apiVersion, type.kind, {
          ...(namespace ? { namespace } : {}),
          ...(labelSelector ? { labelSelector } : {}),
          ...(fieldSelector ? { fieldSelector } : {}),
        });
        return respond(200, list.items, { apiVersion: list.apiVersion, kind: list.kind, resourceVersion: list.metadata.resourceVersion });
      }
      case 'POST': {
        if (route.name !== undefined) throw methodNotAllowed(`POST is not supported on a single ${type.kind}; POST to the collection to create`);
        if (type.namespaced && namespace === undefined) throw methodNotAllowed(`${type.plural} must be created in a namespace: POST to /…/namespaces/<namespace>/${type.plural}`);
        const body = objectFromBody(route, type, decodeObjectBody(await readBody(req, maxBody), req.headers['content-type']));
        const warnings = checkFields(type, body, fieldValidation());
        return respond(201, store.create(body, writeOptions()), undefined, warningHeaders(warnings));
      }
      case 'PUT': {
        if (route.name === undefined) throw methodNotAllowed(`PUT needs an object name: /…/${type.plural}/<name>`);
        const body = objectFromBody(route, type, decodeObjectBody(await readBody(req, maxBody), req.headers['content-type']));
        const warnings = checkFields(type, body, fieldValidation());
        return respond(200, store.update(body, writeOptions()), undefined, warningHeaders(warnings));
      }
      case 'PATCH': {
        if (route.name === undefined) throw methodNotAllowed(`PATCH needs an object name: /…/${type.plural}/<name>`);
        const { type: patchType, patch } = decodePatchBody(await readBody(req, maxBody), req.headers['content-type']);
        let warnings: string[] = [];
        if (patchType !== 'json') {
          const body = asObject(patch, 'the patch');
          warnings = checkFields(type, body, fieldValidation());
        } else if (!Array.isArray(patch)) {
          throw badRequest('a JSON patch (application/json-patch+json) must be an array of operations');
        }
        const options = writeOptions();
        if (patchType === 'apply' && !query.get('fieldManager')) delete options.fieldManager;
        const existed = store.get(apiVersion, type.kind, namespace, route.name) !== undefined;
        const result = store.patch(apiVersion, type.kind, namespace, route.name, patchType, patch, options);
        return respond(existed ? 200 : 201, result, undefined, warningHeaders(warnings));
      }
      case 'DELETE': {
        const body = decodeOptionalJson(await readBody(req, maxBody));
        const deleteOptions = deleteOptionsOf(body, query);
        if (route.name !== undefined) {
          const result = store.delete(apiVersion, type.kind, namespace, route.name, deleteOptions);
          const pending = !deleteOptions.dryRun && store.get(apiVersion, type.kind, namespace, route.name)?.metadata.uid === result.metadata.uid;
          return respond(pending ? 202 : 200, result);
        }
        const labelSelector = query.get('labelSelector');
        const fieldSelector = query.get('fieldSelector');
        const list = store.list(apiVersion, type.kind, {
          ...(namespace ? { namespace } : {}),
          ...(labelSelector ? { labelSelector } : {}),
          ...(fieldSelector ? { fieldSelector } : {}),
        });
        const deleted: KubeObject[] = [];
        for (const item of list.items) {
          try {
            deleted.push(store.delete(apiVersion, type.kind, item.metadata.namespace, item.metadata.name ?? '', deleteOptions));
          } catch (err) {
            // Already gone through garbage collection of an earlier item: not an error for a collection delete.
            if (!(err instanceof ApiError && err.code === 404)) throw err;
          }
        }
        return respond(200, deleted, { apiVersion, kind: type.listKind, resourceVersion: store.currentResourceVersion() });
      }
      default:
        throw methodNotAllowed(`the method ${method} is not supported on ${type.plural}`);
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'https://apiserver.invalid');
    } catch {
      throw badRequest(`the request path "${req.url ?? ''}" is not a valid URL`);
    }
    const route = parseRoute(url.pathname);
    const method = req.method ?? 'GET';
    if (UNAUTHENTICATED.has(route.kind)) {
      if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(`only GET is supported on ${url.pathname}`);
      if (route.kind === 'version') return sendJson(res, 200, SERVER_VERSION);
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache, private' });
      res.end('ok');
      return;
    }
    const authorization = req.headers.authorization ?? '';
    const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];
    if (!token) throw unauthorized();
    const identity = await options.authenticate(token, req);
    if (!identity?.authenticated) throw unauthorized();

    if (route.kind === 'resource') return serveResource(req, res, route, url.searchParams);
    if (method !== 'GET') throw methodNotAllowed(`only GET is supported on ${url.pathname}`);
    switch (route.kind) {
      case 'api':
        return sendJson(res, 200, apiVersions(req.socket.localAddress ? `${req.socket.localAddress}:${req.socket.localPort ?? 443}` : 'localhost:6443'));
      case 'apis':
        return sendJson(res, 200, apiGroupList(registry));
      case 'group': {
        const group = apiGroup(registry, route.group);
        if (!group) throw resourceNotServed();
        return sendJson(res, 200, group);
      }
      case 'resource-list': {
        const list = apiResourceList(registry, route.group, route.version);
        if (!list) throw resourceNotServed();
        return sendJson(res, 200, list);
      }
      case 'openapi-v3':
        return sendJson(res, 200, openApiRoot(registry));
      case 'openapi-v3-group-version': {
        const doc = openApiGroupVersion(registry, route.group, route.version);
        if (!doc) throw resourceNotServed();
        return sendJson(res, 200, doc);
      }
      case 'openapi-v2':
        // An empty protobuf Document (zero bytes). kubectl falls back to v2 client-side validation
        // for kinds v3 does not list (an unknown kind in a manifest); with no definitions it skips
        // validation, and the unknown kind is then reported as kubectl's "no matches for kind".
        res.writeHead(200, { 'Content-Type': 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf', 'Content-Length': 0 });
        res.end();
        return;
      default:
        throw resourceNotServed();
    }
  }

  return (req, res) => {
    res.on('finish', () => log.debug({ method: req.method, url: req.url, status: res.statusCode }, 'API request'));
    handle(req, res).catch((err: unknown) => {
      if (err instanceof ApiError) {
        if (err.code >= 500) log.warn({ err, method: req.method, url: req.url }, 'API request failed');
        sendError(res, err);
        return;
      }
      log.error({ err, method: req.method, url: req.url }, 'unexpected error serving an API request');
      sendError(res, internalError(err instanceof Error ? err.message : String(err)));
    });
  };
}

function deleteOptionsOf(body: Record<string, unknown>, query: URLSearchParams): DeleteOptions {
  const policy = query.get('propagationPolicy') ?? body.propagationPolicy;
  if (policy !== undefined && policy !== null && policy !== 'Foreground' && policy !== 'Background' && policy !== 'Orphan') {
    throw badRequest(`propagationPolicy must be Foreground, Background or Orphan (got ${JSON.stringify(policy)})`);
  }
  const orphan = query.get('orphanDependents') ?? body.orphanDependents;
  const grace = queryInt(query, 'gracePeriodSeconds') ?? (typeof body.gracePeriodSeconds === 'number' ? body.gracePeriodSeconds : undefined);
  const preconditions = body.preconditions !== null && typeof body.preconditions === 'object' ? (body.preconditions as { uid?: unknown; resourceVersion?: unknown }) : undefined;
  const dryRun = query.getAll('dryRun').includes('All') || (Array.isArray(body.dryRun) && body.dryRun.includes('All'));
  return {
    ...(typeof policy === 'string' ? { propagationPolicy: policy } : orphan === true || orphan === 'true' ? { propagationPolicy: 'Orphan' as const } : {}),
    ...(grace !== undefined ? { gracePeriodSeconds: grace } : {}),
    ...(preconditions
      ? {
          preconditions: {
            ...(typeof preconditions.uid === 'string' ? { uid: preconditions.uid } : {}),
            ...(typeof preconditions.resourceVersion === 'string' ? { resourceVersion: preconditions.resourceVersion } : {}),
          },
        }
      : {}),
    ...(dryRun ? { dryRun: true } : {}),
  };
}

/** An HTTPS server around the handler, not yet listening: the caller attaches listeners. */
export function createApiServer(options: ApiServerOptions): Server {
  const server = createServer({ cert: options.tls.cert, key: options.tls.key }, createApiRequestHandler(options));
  // Watches are long-lived; the per-request socket timeout must not cut them.
  server.timeout = 0;
  server.requestTimeout = 0;
  // Requests Node's HTTP parser rejects (unknown methods, malformed headers) never reach the
  // handler; answer them with a Status too instead of Node's bare 400.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const code = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const status = new ApiError(code, 'BadRequest', `the request could not be parsed: ${err.code ?? err.message}`).status;
    const body = JSON.stringify(status);
    socket.end(`HTTP/1.1 ${code} ${STATUS_CODES[code] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  return server;
}
