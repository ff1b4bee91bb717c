/**
 * The whole controller (`ControllerApp`) against the embedded API server, on loopback with ports
 * 0: it becomes ready, keeps its root in `amesh-system/istio-ca-secret`, publishes
 * `istio-ca-root-cert` everywhere, and its CA signs for a node agent exactly when the
 * impersonated workload runs on the agent's node — decided from real TokenReviews and a real
 * pod informer. A second controller after the first one closes must sign with the same root.
 *
 * The shared harness answers TokenReview only for its admin token; node-agent tokens need the
 * sandbox's TokenAuthority behind TokenReview, so this file wires its own server the way the
 * sandbox daemon does (same port across a restart, for the outage case).
 */
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { KubeConfig, type V1ConfigMap, type V1Secret } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readControllerConfig, type ControllerConfig } from '../../src/config/controller-config.js';
import { ControllerApp } from '../../src/controller/app.js';
import { CA_CERT_KEY, CA_SECRET_NAME, controllerDnsNames } from '../../src/controller/ca/root-store.js';
import { TRUST_BUNDLE_CONFIGMAP, TRUST_BUNDLE_KEY } from '../../src/controller/ca/trust-bundle-publisher.js';
import { CA_TOKEN_AUDIENCE } from '../../src/controller/ca/types.js';
import { caServiceDefinition, IMPERSONATED_IDENTITY, stringStruct, type IstioCertificateRequest, type IstioCertificateResponse } from '../../src/identity/ca-proto.js';
import { createCsr, generateKeyPair, type CryptoKeyPairLike } from '../../src/identity/pki.js';
import { createApiServer } from '../../src/sandbox/apiserver/http-server.js';
import { createMemoryStore, INITIAL_NAMESPACES, type MemoryStore } from '../../src/sandbox/apiserver/memory-store.js';
import { createServingCertificates } from '../../src/sandbox/apiserver/serving-cert.js';
import { TokenAuthority } from '../../src/sandbox/apiserver/tokens.js';
import type { KubeObject } from '../../src/sandbox/apiserver/types.js';
import { silentLogger } from '../../src/telemetry/logger.js';
import { ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL } from '../../src/xds/codec.js';
import { eventually } from '../helpers/eventually.js';

const ADMIN_TOKEN = 'controller-test-admin';
const CONTROLLER_NS = 'amesh-system';
const WEB = 'spiffe://cluster.local/ns/demo/sa/web';
const CA_SERVER_NAME = controllerDnsNames(CONTROLLER_NS)[0] as string;
const WAIT = { timeoutMs: 10_000, intervalMs: 50 };

type Callback = (err: grpc.ServiceError | null, response?: IstioCertificateResponse) => void;
interface CaClient extends grpc.Client {
  CreateCertificate(request: IstioCertificateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: Callback): grpc.ClientUnaryCall;
}
const CaClientConstructor = grpc.makeGenericClientConstructor(caServiceDefinition(), 'IstioCertificateService') as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => CaClient;

/** The embedded API server with TokenAuthority-backed authentication and TokenReview. */
interface TokenApiServer {
  store: MemoryStore;
  tokens: TokenAuthority;
  kubeConfig: KubeConfig;
  stop(): Promise<void>;
  /** A fresh server (same store, same port) after `stop`. */
  restart(): Promise<void>;
}

async function startTokenApiServer(): Promise<TokenApiServer> {
  const tokens = await TokenAuthority.create();
  tokens.addStaticToken(ADMIN_TOKEN, { username: 'admin', uid: 'admin', groups: ['system:masters', 'system:authenticated'] });
  const tls = await createServingCertificates({ ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'], days: 1 });
  const store = createMemoryStore();
  const makeServer = (): Server =>
    createApiServer({
      store,
      tls: { cert: tls.certPem, key: tls.keyPem },
      authenticate: (token) => tokens.verify(token),
      tokenReview: (token, audiences) => tokens.verify(token, audiences ? { audiences } : {}),
    });
  let server = makeServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'test', server: `https://127.0.0.1:${port}`, caData: Buffer.from(tls.caCertPem).toString('base64') }],
    users: [{ name: 'admin', token: ADMIN_TOKEN }],
    contexts: [{ name: 'test', cluster: 'test', user: 'admin' }],
    currentContext: 'test',
  });
  const stop = async (): Promise<void> => {
    if (!server.listening) return;
    const closed = once(server, 'close');
    server.close();
    server.closeAllConnections();
    await closed;
  };
  return {
    store,
    tokens,
    kubeConfig,
    stop,
    async restart() {
      await stop();
      server = makeServer();
      server.listen(port, '127.0.0.1');
      await once(server, 'listening');
    },
  };
}

describe('ControllerApp against the embedded API server', () => {
  let api: TokenApiServer;
  let config: Readonly<ControllerConfig>;
  let app: ControllerApp;
  let caPort: number;
  let readinessPort: number;
  let client: CaClient | undefined;
  let keys: CryptoKeyPairLike;
  let rootPem: string;
  const apps: ControllerApp[] = [];

  function createPod(namespace: string, name: string, serviceAccount: string, nodeName: string): KubeObject {
    return api.store.create({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace }, spec: { serviceAccountName: serviceAccount, nodeName, containers: [{ name: 'app', image: 'nginx' }] } });
  }

  function startApp(): ControllerApp {
    const built = ControllerApp.build({ config, kubeConfig: api.kubeConfig, log: silentLogger, listenHost: '127.0.0.1', bundleRetryMs: 50 });
    apps.push(built);
    return built;
  }

  /** A token like the one kubelet projects into the node agent's pod (audience istio-ca). */
  function nodeAgentToken(): Promise<string> {
    const pod = api.store.get('v1', 'Pod', CONTROLLER_NS, 'amesh-node-n1');
    return api.tokens.issueServiceAccountToken({
      namespace: CONTROLLER_NS,
      serviceAccount: 'amesh-node',
      serviceAccountUid: 'amesh-node-sa-uid',
      pod: { name: 'amesh-node-n1', uid: pod?.metadata.uid ?? 'unknown' },
      audiences: [CA_TOKEN_AUDIENCE],
    });
  }

  async function createCertificate(bearer: string, impersonate?: string): Promise<{ err: grpc.ServiceError | null; chain: string[] }> {
    if (!client) throw new Error('no CA client');
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${bearer}`);
    md.set('clusterid', 'Kubernetes');
    const csr = await createCsr({ key: keys, spiffeUri: impersonate ?? WEB });
    const request: IstioCertificateRequest = { csr, validityDuration: 3600, ...(impersonate ? { metadata: stringStruct({ [IMPERSONATED_IDENTITY]: impersonate }) } : {}) };
    const via = client;
    return new Promise((resolve) => {
      via.CreateCertificate(request, md, { deadline: Date.now() + 5000 }, (err, response) => resolve({ err, chain: response?.certChain ?? [] }));
    });
  }

  function connect(): CaClient {
    client?.close();
    client = new CaClientConstructor(`127.0.0.1:${caPort}`, grpc.credentials.createSsl(Buffer.from(rootPem)), {
      'grpc.ssl_target_name_override': CA_SERVER_NAME,
      'grpc.default_authority': CA_SERVER_NAME,
    });
    return client;
  }

  async function readiness(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`http://127.0.0.1:${port}/healthz/ready`, { signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  function secretCaCert(): string | undefined {
    const secret = api.store.get<V1Secret & KubeObject>('v1', 'Secret', CONTROLLER_NS, CA_SECRET_NAME);
    const data = secret?.data?.[CA_CERT_KEY];
    return data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8');
  }

  function publishedBundle(namespace: string): string | undefined {
    return api.store.get<V1ConfigMap & KubeObject>('v1', 'ConfigMap', namespace, TRUST_BUNDLE_CONFIGMAP)?.data?.[TRUST_BUNDLE_KEY];
  }

  beforeAll(async () => {
    api = await startTokenApiServer();
    for (const name of [CONTROLLER_NS, 'demo']) api.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    createPod(CONTROLLER_NS, 'amesh-node-n1', 'amesh-node', 'n1');
    createPod('demo', 'web-1', 'web', 'n1');
    keys = await generateKeyPair();
    config = readControllerConfig({ AMESH_CA_PORT: '0', AMESH_READINESS_PORT: '0' });
  });

  afterAll(async () => {
    client?.close();
    for (const a of apps) await a.close();
    await api?.stop();
    api?.store.close();
  });

  it('becomes ready once started (readiness 200 on /healthz/ready)', async () => {
    app = startApp();
    expect(app.readiness()).toEqual({ ready: false, rootLoaded: false, podsSynced: false, meshSynced: false, caListening: false, trustBundlePublished: false });
    ({ caPort, readinessPort } = await app.start());
    expect(caPort).toBeGreaterThan(0);
    expect(readinessPort).toBeGreaterThan(0);
    expect(caPort).not.toBe(readinessPort);
    const ready = await eventually(async () => {
      const r = await readiness(readinessPort);
      expect(r.status).toBe(200);
      return r;
    }, { ...WAIT, description: 'readiness 200' });
    expect(ready.body).toMatchObject({ ready: true, rootLoaded: true, podsSynced: true, meshSynced: true, caListening: true });
    const other = await fetch(`http://127.0.0.1:${readinessPort}/nope`, { signal: AbortSignal.timeout(2000) });
    expect(other.status).toBe(404);
    await other.body?.cancel();
    // What the agents are served, name → version per type (the fault tests compare agents' /config_dump with it).
    const xds = (await (await fetch(`http://127.0.0.1:${readinessPort}/debug/xds`, { signal: AbortSignal.timeout(2000) })).json()) as { resources: Record<string, Record<string, string>> };
    for (const typeUrl of [ADDRESS_TYPE_URL, AUTHORIZATION_TYPE_URL]) {
      expect(xds.resources[typeUrl], typeUrl).toEqual(Object.fromEntries([...app.store.resources(typeUrl)].map(([name, r]) => [name, r.version])));
    }
  });

  it('keeps its root in amesh-system/istio-ca-secret and publishes istio-ca-root-cert in every namespace', async () => {
    const stored = secretCaCert();
    expect(stored).toBeDefined();
    rootPem = stored as string;
    expect(app.roots.current().certPem).toBe(rootPem);
    expect(new X509Certificate(rootPem).ca).toBe(true);
    const namespaces = [...INITIAL_NAMESPACES, CONTROLLER_NS, 'demo'];
    await eventually(() => {
      for (const ns of namespaces) expect(publishedBundle(ns), ns).toContain(rootPem.trim());
    }, { ...WAIT, description: 'istio-ca-root-cert in every namespace' });
    await eventually(() => expect(app.readiness().trustBundlePublished).toBe(true), { ...WAIT, description: 'trust bundle published' });
    // A namespace created later gets one too.
    api.store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'late' } });
    await eventually(() => expect(publishedBundle('late')).toContain(rootPem.trim()), { ...WAIT, description: 'istio-ca-root-cert in namespace late' });
  });

  it('signs demo/web for the node agent of n1 while a demo/web pod runs on n1', async () => {
    connect();
    const { err, chain } = await createCertificate(await nodeAgentToken(), WEB);
    expect(err).toBeNull();
    expect(chain).toHaveLength(2);
    expect(chain[1]).toBe(rootPem);
    const leaf = new X509Certificate(chain[0] as string);
    const root = new X509Certificate(rootPem);
    expect(leaf.checkIssued(root)).toBe(true);
    expect(leaf.verify(root.publicKey)).toBe(true);
    expect(new x509.X509Certificate(chain[0] as string).getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON()).toEqual([{ type: 'url', value: WEB }]);
  });

  it('refuses it (PERMISSION_DENIED) once demo/web runs only on n2', async () => {
    api.store.delete('v1', 'Pod', 'demo', 'web-1');
    createPod('demo', 'web-2', 'web', 'n2');
    const bearer = await nodeAgentToken();
    const denied = await eventually(async () => {
      const r = await createCertificate(bearer, WEB);
      expect(r.err?.code, r.err?.details).toBe(grpc.status.PERMISSION_DENIED);
      return r;
    }, { ...WAIT, description: 'PERMISSION_DENIED for demo/web from n1' });
    expect(denied.chain).toEqual([]);
    expect(denied.err?.details).toMatch(/no pod of demo\/web runs on node n1/);
  });

  it('answers UNAVAILABLE for a token it cannot review while the API server is down, and recovers', async () => {
    const cached = await nodeAgentToken();
    // Reviewed (and cached) while the API server is up: its own identity needs no pod lookup.
    const own = 'spiffe://cluster.local/ns/amesh-system/sa/amesh-node';
    expect((await createCertificate(cached, own)).err).toBeNull();
    const fresh = await nodeAgentToken();
    await api.stop();
    try {
      const refused = await createCertificate(fresh, own);
      expect(refused.err?.code, refused.err?.details).toBe(grpc.status.UNAVAILABLE);
      expect(refused.chain).toEqual([]);
      // A token reviewed a moment ago is still served from the review cache.
      expect((await createCertificate(cached, own)).err).toBeNull();
    } finally {
      await api.restart();
    }
    expect((await createCertificate(fresh, own)).err).toBeNull();
  });

  it('after close, a new controller reuses the same root', async () => {
    await app.close();
    await expect(fetch(`http://127.0.0.1:${readinessPort}/healthz/ready`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
    expect(app.readiness().caListening).toBe(false);

    app = startApp();
    ({ caPort, readinessPort } = await app.start());
    await eventually(async () => expect((await readiness(readinessPort)).status).toBe(200), { ...WAIT, description: 'second controller ready' });
    expect(app.roots.current().certPem).toBe(rootPem);
    expect(secretCaCert()).toBe(rootPem);
    expect(publishedBundle('demo')).toContain(rootPem.trim());

    // Its CA signs with that root (its serving certificate, new, chains to it too).
    connect();
    const { err, chain } = await createCertificate(await nodeAgentToken(), 'spiffe://cluster.local/ns/amesh-system/sa/amesh-node');
    expect(err).toBeNull();
    expect(chain[1]).toBe(rootPem);
    await app.close();
  });
});
