/**
 * Robustness: thousands of random requests (seeded, so a failure replays) — malformed JSON and
 * YAML, wrong types, hostile paths and query strings, odd methods and content types, oversized
 * bodies. Every answer must be a valid HTTP status, every error a JSON `Status` carrying that
 * status, no request may hit the unexpected-exception path (500), and the server must still
 * answer /healthz afterwards.
 */
import { Agent, request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, TOKEN, type Harness } from './apiserver-harness.js';
import { seededRandom as prng } from '../helpers/seeded-random.js';

const SEED = Number(process.env.AMESH_FUZZ_SEED ?? 20260122);
const REQUESTS = 2500;


const rand = prng(SEED);
const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
const chance = (p: number): boolean => rand() < p;
const int = (max: number): number => Math.floor(rand() * max);

const GARBAGE = ['', '%00', '%2F', '..', '.', 'ÿ', '%E0%A4%A', 'a'.repeat(300), '{name}', '*', ' ', '%20x', 'x;y', 'UPPER', '-bad-', 'ok'];
const NAMESPACES = ['default', 'demo', 'kube-system', 'missing', ...GARBAGE];
const CORE = ['pods', 'services', 'namespaces', 'configmaps', 'secrets', 'nodes', 'events', 'endpoints', 'serviceaccounts', 'bogus'];
const GROUPS = [
  ['apps', 'v1', ['deployments', 'replicasets', 'daemonsets']],
  ['networking.istio.io', pick(['v1', 'v1beta1', 'v1alpha3']), ['virtualservices', 'destinationrules', 'gateways', 'serviceentries']],
  ['security.istio.io', 'v1', ['peerauthentications', 'authorizationpolicies']],
  ['gateway.networking.k8s.io', 'v1', ['gateways', 'httproutes', 'gatewayclasses']],
  ['apiextensions.k8s.io', 'v1', ['customresourcedefinitions']],
  ['authentication.k8s.io', 'v1', ['tokenreviews']],
  ['discovery.k8s.io', 'v1', ['endpointslices']],
  ['coordination.k8s.io', 'v1', ['leases']],
  ['example.com', 'v1', ['widgets']],
] as const;
const NAMES = ['web', 'a', 'x', ...GARBAGE];
const SUBRESOURCES = ['status', 'scale', 'log', 'finalize', 'bogus', ...GARBAGE];
const METHODS = ['GET', 'GET', 'POST', 'POST', 'PUT', 'PATCH', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'FOO'];
const CONTENT_TYPES = [
  undefined,
  'application/json',
  'application/json; charset=utf-8',
  'application/yaml',
  'application/merge-patch+json',
  'application/json-patch+json',
  'application/strategic-merge-patch+json',
  'application/apply-patch+yaml',
  'application/vnd.kubernetes.protobuf',
  'text/plain',
  'multipart/form-data; boundary=x',
  ';;;',
];
const KINDS = [
  ['v1', 'Pod'],
  ['v1', 'Service'],
  ['v1', 'ConfigMap'],
  ['v1', 'Namespace'],
  ['apps/v1', 'Deployment'],
  ['networking.istio.io/v1', 'VirtualService'],
  ['apiextensions.k8s.io/v1', 'CustomResourceDefinition'],
  ['authentication.k8s.io/v1', 'TokenReview'],
  ['bogus/v1', 'Thing'],
] as const;

function randomScalar(): unknown {
  return pick([() => int(1e6) - 5e5, () => rand(), () => true, () => null, () => pick(GARBAGE), () => 'x'.repeat(int(50)), () => -0, () => 1e308])();
}

function randomValue(depth: number): unknown {
  if (depth <= 0 || chance(0.4)) return randomScalar();
  if (chance(0.5)) return Array.from({ length: int(4) }, () => randomValue(depth - 1));
  const out: Record<string, unknown> = {};
  for (let i = 0; i < int(5); i++) out[pick(['spec', 'status', 'metadata', 'data', 'name', 'labels', 'containers', '$patch', '__proto__', 'constructor', 'x'])] = randomValue(depth - 1);
  return out;
}

function randomObject(): unknown {
  const [apiVersion, kind] = pick(KINDS);
  const object: Record<string, unknown> = {
    apiVersion,
    kind,
    metadata: { name: pick(NAMES), namespace: pick(NAMESPACES), labels: { app: 'web' }, ownerReferences: [{ uid: 'x', name: 'y', kind: 'Pod', apiVersion: 'v1' }] },
    spec: { containers: [{ name: 'app', image: 'nginx' }], ports: [{ port: 80 }], selector: { app: 'web' }, group: 'example.com', names: { kind: 'Widget', plural: 'widgets' }, token: TOKEN },
    data: { a: 'b' },
  };
  // Mutate: drop fields or give them the wrong type (`metadata: 5`).
  for (let i = 0; i < int(4); i++) {
    const key = pick(['apiVersion', 'kind', 'metadata', 'spec', 'data', 'status']);
    if (chance(0.3)) delete object[key];
    else object[key] = randomValue(2);
  }
  const meta = object.metadata;
  if (chance(0.2) && meta !== null && typeof meta === 'object' && !Array.isArray(meta)) {
    (meta as Record<string, unknown>)[pick(['name', 'labels', 'finalizers', 'resourceVersion', 'generateName', 'annotations'])] = randomValue(1);
  }
  return object;
}

/** `kubectl create service clusterip svc1 --tcp=80:8080` as kubectl sends it (protobuf). */
const PROTOBUF_SERVICE = Buffer.from(
  '6b3873000a0d0a027631120753657276696365126c0a210a047376633112001a0022002a003200380042005a0b0a0361707012047376633112430a1b0a0738302d38303830120354435018502207080010903f1a002800120b0a036170701204737663311a002209436c757374657249503a00420052005a00600068001a020a001a002200',
  'hex',
);

function randomBody(contentType: string | undefined): string | Buffer | undefined {
  if (contentType === 'application/vnd.kubernetes.protobuf' && chance(0.7)) {
    // Bit-flipped and truncated variants of a real kubectl body.
    const body = Buffer.from(PROTOBUF_SERVICE.subarray(0, chance(0.3) ? int(PROTOBUF_SERVICE.length) : PROTOBUF_SERVICE.length));
    for (let i = 0; i < int(4); i++) if (body.length > 4) body[4 + int(body.length - 4)] = int(256);
    return body;
  }
  const choice = int(10);
  if (choice === 0) return undefined;
  if (choice === 1) return Buffer.from(Array.from({ length: int(200) }, () => int(256)));
  if (choice === 2) return JSON.stringify(randomObject()).slice(0, int(80));
  if (choice === 3) return JSON.stringify(randomValue(4));
  if (choice === 4) return '['.repeat(5000) + ']'.repeat(5000);
  if (choice === 5) return `a: &a [x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\nmetadata: {name: ${pick(NAMES) || 'n'}}\n`;
  if (choice === 6 && contentType?.includes('json-patch')) return JSON.stringify([{ op: pick(['add', 'remove', 'replace', 'test', 'move', 'copy', 'bogus']), path: pick(['/spec', '/metadata/name', '', '/a/b/c', 'x', '/metadata/labels/x']), value: randomValue(2), from: '/spec' }]);
  return JSON.stringify(randomObject());
}

/** Paths of the objects seeded in beforeAll: where writes get past routing and lookup. */
const REAL_PATHS = ['default', 'demo'].flatMap((ns) => [
  `/api/v1/namespaces/${ns}/configmaps`,
  `/api/v1/namespaces/${ns}/pods`,
  ...['web', 'a', 'x'].flatMap((name) => [
    `/api/v1/namespaces/${ns}/configmaps/${name}`,
    `/api/v1/namespaces/${ns}/pods/${name}`,
    `/api/v1/namespaces/${ns}/pods/${name}/status`,
    `/apis/networking.istio.io/v1beta1/namespaces/${ns}/virtualservices/${name}`,
  ]),
]);

function randomPath(): string {
  if (chance(0.4)) return pick(REAL_PATHS);
  const shape = int(8);
  if (shape === 0) return pick(['/', '/api', '/apis', '/api/v1', '/apis/apps', '/apis/apps/v1', '/openapi/v2', '/openapi/v3', '/openapi/v3/apis/apps/v1', '/version', '/healthz', '/bogus', '/apis/x/y/z']);
  if (shape === 1) return `/${Array.from({ length: int(7) }, () => pick([...GARBAGE, 'api', 'apis', 'v1', 'watch', 'namespaces'])).join('/')}`;
  const prefix = chance(0.5) ? '/api/v1' : (() => {
    const [group, version, plurals] = pick(GROUPS);
    return `/apis/${group}/${version}${chance(0.01) ? pick(plurals) : ''}`;
  })();
  const plural = prefix === '/api/v1' ? pick(CORE) : pick(GROUPS.find((g) => prefix.includes(g[0]))?.[2] ?? ['x']);
  const watch = chance(0.1) ? '/watch' : '';
  const namespaced = chance(0.6) ? `/namespaces/${pick(NAMESPACES)}` : '';
  const name = chance(0.6) ? `/${pick(NAMES)}` : '';
  const sub = name && chance(0.3) ? `/${pick(SUBRESOURCES)}` : '';
  return `${prefix}${watch}${namespaced}/${plural}${name}${sub}`;
}

function randomQuery(): string {
  const params = new URLSearchParams();
  const options: Array<[string, () => string]> = [
    ['labelSelector', () => pick(['app=web', 'app in (a,b)', '!x', 'a b', '((', 'x!=', '=', 'k notin ()'])],
    ['fieldSelector', () => pick(['metadata.name=web', 'spec.nodeName!=', 'bad', '==', 'a=b=c'])],
    ['resourceVersion', () => pick(['0', '1', '', 'abc', '-1', '99999999999999999999', '1e3', String(int(50))])],
    ['watch', () => pick(['true', '1', 'false', 'yes'])],
    ['timeoutSeconds', () => pick(['1', '0', '-5', 'abc', '99999999999'])],
    ['allowWatchBookmarks', () => 'true'],
    ['fieldValidation', () => pick(['Strict', 'Warn', 'Ignore', 'bogus', ''])],
    ['dryRun', () => pick(['All', 'bogus', ''])],
    ['propagationPolicy', () => pick(['Foreground', 'Background', 'Orphan', 'bogus'])],
    ['gracePeriodSeconds', () => pick(['0', '30', 'x'])],
    ['fieldManager', () => pick(['kubectl', '', 'x'.repeat(200)])],
    ['force', () => pick(['true', 'false'])],
    ['includeObject', () => pick(['Object', 'None', 'Metadata', 'x'])],
    ['sendInitialEvents', () => 'true'],
    ['limit', () => pick(['1', '500', 'x'])],
  ];
  for (const [key, value] of options) if (chance(0.15)) params.set(key, value());
  const text = params.toString();
  return text ? `?${text}${chance(0.05) ? '&%zz=%' : ''}` : '';
}

interface Answer {
  status: number;
  body: string;
  method: string;
  path: string;
}

describe('API server fuzzing', () => {
  let h: Harness;
  let agent: Agent;
  beforeAll(async () => {
    h = await startHarness({ eventLogSize: 50 });
    h.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'demo' } });
    // Objects under the names the fuzzer uses, so PUT/PATCH/DELETE reach real objects too.
    for (const namespace of ['default', 'demo']) {
      for (const name of ['web', 'a', 'x']) {
        h.store.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data: { a: 'b' } });
        h.store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'nginx' }] } });
        h.store.create({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace }, spec: { hosts: ['web'] } });
      }
    }
    agent = new Agent({ keepAlive: true, maxSockets: 16, ca: h.ca });
  });
  afterAll(async () => {
    agent?.destroy();
    await h?.close();
  });

  function send(method: string, path: string, body: string | Buffer | undefined, contentType: string | undefined, token: string | undefined, accept: string | undefined): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = {};
      if (token !== undefined) headers.Authorization = `Bearer ${token}`;
      if (contentType !== undefined) headers['Content-Type'] = contentType;
      if (accept !== undefined) headers.Accept = accept;
      if (body !== undefined) headers['Content-Length'] = Buffer.byteLength(body);
      const req = httpsRequest({ host: '127.0.0.1', port: h.port, method, path, headers, agent }, (res) => {
        const status = res.statusCode ?? 0;
        if (status < 400) {
          // Successes may be endless watch streams: the status line is all we check.
          res.destroy();
          resolve({ status, body: '', method, path });
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString('utf8'), method, path }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path} got no answer within 10 s`)));
      req.end(body);
    });
  }

  it(`survives ${REQUESTS} random requests (seed ${SEED})`, { timeout: 120_000 }, async () => {
    const failures: string[] = [];
    const check = (a: Answer): void => {
      const where = `${a.method} ${a.path}`;
      if (a.status < 100 || a.status > 599) failures.push(`${where}: invalid status ${a.status}`);
      if (a.status >= 500) failures.push(`${where}: ${a.status} ${a.body.slice(0, 300)}`);
      if (a.status >= 400 && a.method !== 'HEAD') {
        try {
          const status = JSON.parse(a.body) as { kind?: string; code?: number };
          if (status.kind !== 'Status' || status.code !== a.status) failures.push(`${where}: error body is not a matching Status: ${a.body.slice(0, 200)}`);
        } catch {
          failures.push(`${where}: error body is not JSON: ${a.body.slice(0, 200)}`);
        }
      }
    };
    for (let sent = 0; sent < REQUESTS; ) {
      const batch: Array<Promise<Answer>> = [];
      for (let i = 0; i < 16 && sent < REQUESTS; i++, sent++) {
        const method = pick(METHODS);
        const contentType = pick(CONTENT_TYPES);
        const body = method === 'GET' || method === 'HEAD' ? undefined : randomBody(contentType);
        const token = chance(0.05) ? pick([undefined, 'wrong', '']) : TOKEN;
        const accept = chance(0.2) ? 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' : undefined;
        // Node's client refuses raw spaces and non-ASCII in paths; send them percent-encoded.
        const path = `${randomPath()}${randomQuery()}`.replace(/[^\x21-\x7e]/g, (c) => encodeURIComponent(c));
        batch.push(send(method, path, body, contentType, token, accept));
      }
      for (const answer of await Promise.all(batch)) check(answer);
    }
    expect(failures.slice(0, 20)).toEqual([]);
  });

  it('answers 413 for bodies over 3 MiB and keeps serving', async () => {
    const huge = Buffer.alloc(3 * 1024 * 1024 + 10, 0x61);
    const answer = await send('POST', '/api/v1/namespaces/default/configmaps', huge, 'application/json', TOKEN, undefined);
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ kind: 'Status', code: 413, reason: 'RequestEntityTooLarge' });
  });

  it('still answers /healthz and real requests afterwards', async () => {
    expect((await h.request('GET', '/healthz', { token: null })).body).toBe('ok');
    // default cannot be deleted, whatever the fuzzer did.
    expect((await h.request('GET', '/api/v1/namespaces/default')).status).toBe(200);
  });
});
