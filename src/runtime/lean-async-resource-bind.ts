/**
 * `AsyncResource.prototype.bind` without the two `util.deprecate` wrappers Node builds per call.
 *
 * Why: Node's http2 `ClientHttp2Session.request()` binds its connect callback with
 * `new AsyncResource('PendingRequest').bind(…)`, so every HBONE CONNECT a node agent or an L7
 * proxy opens pays for it. Node 20 and 24 give each bound function a deprecated `asyncResource`
 * accessor (DEP0172) whose getter and setter are fresh `util.deprecate` wrappers, and
 * `deprecate` re-parents each wrapper (`Object.setPrototypeOf`), which gives it a hidden class of
 * its own in the old generation. Measured in the client agent at ~1 500 new connections/s: 3 %
 * of its CPU in `deprecate` + 1.5 % in `bind`, and 17 % of the bytes that survive its young
 * collections (`bench/agent-cpu.ts --new-connections`, sampled heap profile without the objects
 * young collections freed). Upstream: nodejs/node#58218 (deprecate's CPU), #58618 (removing the
 * property).
 *
 * What changes: the accessor stays (same name, enumerable, get and set the resource) but is one
 * shared getter/setter pair and emits no DeprecationWarning. Everything else is Node's: the
 * function runs in the resource's async scope with the caller's `this` (or `thisArg`), `length`
 * is `fn`'s, a non-function throws ERR_INVALID_ARG_TYPE.
 *
 * Installed only over the implementation it replaces: a `bind` whose source is not Node's
 * DEP0172 one (a Node that dropped the property, or another patch) is left alone. amesh's own
 * processes install it at build (the node agent, the waypoint and the gateway); nothing in them
 * reads `asyncResource`.
 */
import { AsyncResource } from 'node:async_hooks';

export type LeanBindStatus = 'installed' | 'already-installed' | 'not-applicable';

const RESOURCE = Symbol('amesh.asyncResource');

interface BoundFunction {
  [RESOURCE]?: AsyncResource;
}

function getResource(this: BoundFunction): AsyncResource | undefined {
  return this[RESOURCE];
}

function setResource(this: BoundFunction, value: AsyncResource): void {
  this[RESOURCE] = value;
}

/** Node's own, taken when this module loads: it still answers a non-function (with Node's exact error). */
const NODE_BIND = AsyncResource.prototype.bind;

type AnyFunction = (this: unknown, ...args: unknown[]) => unknown;

/** `fn` run in `resource`'s async scope with the caller's `this`. */
function inScopeOf(resource: AsyncResource, fn: AnyFunction): AnyFunction {
  return function (this: unknown, ...args: unknown[]): unknown {
    return resource.runInAsyncScope(fn, this, ...args);
  };
}

function leanBind(this: AsyncResource, fn: AnyFunction, thisArg?: unknown): AnyFunction {
  if (typeof fn !== 'function') return (NODE_BIND as (this: AsyncResource, fn: unknown, thisArg?: unknown) => AnyFunction).call(this, fn, thisArg);
  let bound: AnyFunction & BoundFunction;
  if (thisArg === undefined) {
    bound = inScopeOf(this, fn);
  } else {
    bound = this.runInAsyncScope.bind(this, fn, thisArg) as AnyFunction;
  }
  Object.defineProperty(bound, 'length', { configurable: true, enumerable: false, value: fn.length, writable: false });
  Object.defineProperty(bound, 'asyncResource', { configurable: true, enumerable: true, get: getResource, set: setResource });
  bound[RESOURCE] = this;
  return bound;
}

/** Is `bind` the implementation this replaces (Node's, building DEP0172 wrappers per call)? */
function isNodeDeprecatingBind(bind: unknown): boolean {
  return typeof bind === 'function' && Function.prototype.toString.call(bind).includes('DEP0172');
}

/**
 * Installs the lean `bind` on `resourceClass.prototype` (default: Node's AsyncResource, for the
 * whole process). Idempotent. Tests pass a subclass to keep the change to themselves.
 */
export function installLeanAsyncResourceBind(resourceClass: typeof AsyncResource = AsyncResource): LeanBindStatus {
  const current: unknown = resourceClass.prototype.bind;
  if (current === leanBind) return 'already-installed';
  if (!isNodeDeprecatingBind(current)) return 'not-applicable';
  Object.defineProperty(resourceClass.prototype, 'bind', { configurable: true, enumerable: false, writable: true, value: leanBind });
  return 'installed';
}
