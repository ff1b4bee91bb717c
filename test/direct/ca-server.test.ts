/**
 * The CA server end to end on loopback: a real grpc-js server with TLS, tokens from the sandbox's
 * TokenAuthority (real JWTs, real expiry), a fake PodLocator, and a grpc-js generic client built
 * from the same service definition the node agent uses. Every refusal must reach the client as
 * the right status with no certificate, and leave one structured log line behind.
 */
import { X509Certificate } from 'node:crypto';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCaServer, type CaServer } from '../../src/controller/ca/ca-server.js';
import type { SigningMaterial, TokenReviewer } from '../../src/controller/ca/types.js';
import { caServiceDefinition, IMPERSONATED_IDENTITY, stringStruct, type IstioCertificateRequest, type IstioCertificateResponse } from '../../src/identity/ca-proto.js';
import { createCsr, generateCa, generateKeyPair, type CryptoKeyPairLike } from '../../src/identity/pki.js';
import { createServingCertificates, type ServingCertificates } from '../../src/sandbox/apiserver/serving-cert.js';
import { TokenAuthority } from '../../src/sandbox/apiserver/tokens.js';
import { podLocator } from '../helpers/ca-pods.js';

const SERVER_NAME = 'istiod.istio-system.svc';
const REVIEWS = 'spiffe://cluster.local/ns/default/sa/reviews';
const RATINGS = 'spiffe://cluster.local/ns/default/sa/ratings';
const AGENT = 'spiffe://cluster.local/ns/amesh-system/sa/amesh-node';
const MAX_TTL = 6 * 3600;

interface LogLine {
  msg: string;
  level: number;
  [key: string]: unknown;
}

type Callback = (err: grpc.ServiceError | null, response?: IstioCertificateResponse) => void;
interface CaClient extends grpc.Client {
  CreateCertificate(request: IstioCertificateRequest, metadata: grpc.Metadata, callback: Callback): grpc.ClientUnaryCall;
}
const CaClientConstructor = grpc.makeGenericClientConstructor(caServiceDefinition(), 'IstioCertificateService') as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => CaClient;

describe('CA server (IstioCertificateService over TLS)', () => {
  const logs: LogLine[] = [];
  let clock = Date.now();
  let authority: TokenAuthority;
  let serving: ServingCertificates;
  let root: SigningMaterial;
  let server: CaServer;
  let port: number;
  let client: CaClient;
  let reviewFails = false;
  let keys: CryptoKeyPairLike;

  const locator = podLocator();
  const reviewer: TokenReviewer = {
    async review(token, audiences) {
      if (reviewFails) throw new Error('connect ECONNREFUSED 10.96.0.1:443');
      const r = await authority.verify(token, { audiences });
      if (!r.authenticated || !r.user) return { authenticated: false, error: r.error ?? 'unauthenticated' };
      return { authenticated: true, username: r.user.username, uid: r.user.uid, groups: r.user.groups, ...(r.user.extra ? { extra: r.user.extra } : {}) };
    },
  };

  function connect(caPem: string): CaClient {
    return new CaClientConstructor(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(caPem)), { 'grpc.ssl_target_name_override': SERVER_NAME, 'grpc.default_authority': SERVER_NAME });
  }

  function token(namespace: string, serviceAccount: string, bound: { pod?: string; node?: string } = {}, audiences = ['istio-ca']): Promise<string> {
    return authority.issueServiceAccountToken({
      namespace,
      serviceAccount,
      serviceAccountUid: `${namespace}-${serviceAccount}-uid`,
      audiences,
      ...(bound.pod ? { pod: { name: bound.pod, uid: `${bound.pod}-uid` } } : {}),
      ...(bound.node ? { node: { name: bound.node, uid: `${bound.node}-uid` } } : {}),
    });
  }

  function metadata(bearer?: string, extra: Record<string, string> = {}): grpc.Metadata {
    const md = new grpc.Metadata();
    if (bearer !== undefined) md.set('authorization', bearer);
    md.set('clusterid', 'Kubernetes');
    for (const [k, v] of Object.entries(extra)) md.set(k, v);
    return md;
  }

  function call(request: Partial<IstioCertificateRequest>, md: grpc.Metadata, via: CaClient = client): Promise<{ err: grpc.ServiceError | null; response: IstioCertificateResponse | undefined; logs: LogLine[] }> {
    const before = logs.length;
    const full: IstioCertificateRequest = { csr: '', validityDuration: 0, ...request };
    return new Promise((resolve) => {
      via.CreateCertificate(full, md, (err, response) => resolve({ err, response, logs: logs.slice(before) }));
    });
  }

  async function expectRefused(request: Partial<IstioCertificateRequest>, md: grpc.Metadata, code: grpc.status, reason: RegExp): Promise<LogLine> {
    const { err, response, logs: lines } = await call(request, md);
    expect(response).toBeUndefined();
    expect(err?.code, err?.details).toBe(code);
    expect(err?.details).toMatch(reason);
    expect(err?.details).not.toMatch(/\bat .*\.(ts|js):\d+/);
    const refused = lines.filter((l) => l.msg === 'certificate refused');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ code: grpc.status[code] });
    expect(lines.some((l) => l.msg === 'certificate issued')).toBe(false);
    return refused[0] as LogLine;
  }

  beforeAll(async () => {
    authority = await TokenAuthority.create({ now: () => new Date(clock) });
    serving = await createServingCertificates({ dnsNames: [SERVER_NAME], ipAddresses: ['127.0.0.1'] });
    const ca = await generateCa({ trustDomain: 'cluster.local', validityDays: 30 });
    root = { certPem: ca.certPem, keyPem: ca.keyPem, chainPem: [], trustBundlePem: [ca.certPem] };
    keys = await generateKeyPair();
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
        done();
      },
    });
    server = createCaServer({
      material: () => root,
      reviewer,
      pods: locator,
      trustDomain: 'cluster.local',
      maxTtlSeconds: MAX_TTL,
      serving: { certChainPem: serving.certPem, keyPem: serving.keyPem },
      log: pino({ level: 'info' }, sink),
    });
    port = await server.listen(0, '127.0.0.1');
    client = connect(serving.caCertPem);
  });

  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  beforeEach(() => {
    clock = Date.now();
    reviewFails = false;
  });

  describe('issues', () => {
    it('a workload its own identity: chain leaf → root, default lifetime within the cap, one log line', async () => {
      const csr = await createCsr({ key: keys, spiffeUri: REVIEWS });
      const { err, response, logs: lines } = await call({ csr }, metadata(`Bearer ${await token('default', 'reviews', { pod: 'reviews-1' })}`));
      expect(err).toBeNull();
      const chain = response?.certChain ?? [];
      expect(chain).toHaveLength(2);
      expect(chain[1]).toBe(root.certPem);
      const leaf = new X509Certificate(chain[0] as string);
      const rootCert = new X509Certificate(chain[1] as string);
      expect(leaf.checkIssued(rootCert)).toBe(true);
      expect(leaf.verify(rootCert.publicKey)).toBe(true);
      expect(new x509.X509Certificate(chain[0] as string).getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON()).toEqual([{ type: 'url', value: REVIEWS }]);
      // 0 asks for the default (24 h), which the 6 h cap shortens.
      const lifetime = new Date(leaf.validTo).getTime() - Date.now();
      expect(lifetime).toBeLessThanOrEqual(MAX_TTL * 1000);
      expect(lifetime).toBeGreaterThan(MAX_TTL * 1000 - 60_000);
      const issued = lines.filter((l) => l.msg === 'certificate issued');
      expect(issued).toHaveLength(1);
      expect(issued[0]).toMatchObject({ identity: REVIEWS, caller: REVIEWS, impersonating: false, clusterId: 'Kubernetes', serial: leaf.serialNumber.toLowerCase() });
      expect(typeof issued[0]?.notAfter).toBe('string');
    });

    it('caps a long requested lifetime and honours a short one', async () => {
      const csr = await createCsr({ key: keys, spiffeUri: REVIEWS });
      const bearer = `Bearer ${await token('default', 'reviews')}`;
      const long = await call({ csr, validityDuration: 365 * 86400 }, metadata(bearer));
      const longLeaf = new X509Certificate(long.response?.certChain[0] as string);
      expect(new Date(longLeaf.validTo).getTime() - Date.now()).toBeLessThanOrEqual(MAX_TTL * 1000);
      const short = await call({ csr, validityDuration: 600 }, metadata(bearer));
      const shortLeaf = new X509Certificate(short.response?.certChain[0] as string);
      expect(new Date(shortLeaf.validTo).getTime() - Date.now()).toBeLessThanOrEqual(600_000);
      expect(new Date(shortLeaf.validTo).getTime() - Date.now()).toBeGreaterThan(540_000);
    });

    it('a node agent a local pod’s identity (ImpersonatedIdentity)', async () => {
      const csr = await createCsr({ key: keys, spiffeUri: REVIEWS });
      const md = metadata(`Bearer ${await token('amesh-system', 'amesh-node', { pod: 'amesh-node-1' })}`);
      const { err, response, logs: lines } = await call({ csr, metadata: stringStruct({ [IMPERSONATED_IDENTITY]: REVIEWS }) }, md);
      expect(err).toBeNull();
      expect(response?.certChain).toHaveLength(2);
      expect(lines.find((l) => l.msg === 'certificate issued')).toMatchObject({ identity: REVIEWS, caller: AGENT, impersonating: true });
    });
  });

  describe('refuses', () => {
    it('a call without a token (UNAUTHENTICATED)', async () => {
      const csr = await createCsr({ key: keys, spiffeUri: REVIEWS });
      await expectRefused({ csr }, metadata(), grpc.status.UNAUTHENTICATED, /authorization/);
      await expectRefused({ csr }, metadata('Basic dXNlcjpwYXNz'), grpc.status.UNAUTHENTICATED, /Bearer/);
    });

    it('an invalid token (UNAUTHENTICATED)', async () => {
      const csr = await createCsr({ key: keys, spiffeUri: REVIEWS });
      await expectRefused({ csr }, metadata('Bearer not-a-jwt'), grpc.status.UNAUTHENTICATED, /not a valid JWT/);
      // A real token, but for the API server's audience, not the CA's.
      await expectRefused({ csr }, metadata(`Bearer ${await token('default', 'reviews', {}, [authority.issuer])}`), grpc.status.UNAUTHENTICATED, /audiences/);
    });

    it('an expired token (UNAUTHENTICATED)', async () => {
      clock = Date.now() - 2 * 3600_000;
      const expired = await token('default', 'reviews');
      clock = Date.now();
      const csr = await createCsr({ key: keys, spiffeUri: REVIEWS });
      await expectRefused({ csr }, metadata(`Bearer ${expired}`), grpc.status.UNAUTHENTICATED, /expired/);
    });

    it('when the token review cannot run (UNAVAILABLE), without leaking the cause', async () => {
      reviewFails = true;
      const csr = await createCsr({ key: keys, spiffeUri: REVIEWS });
      const line = await expectRefused({ csr }, metadata(`Bearer ${await token('default', 'reviews')}`), grpc.status.UNAVAILABLE, /cannot review/);
      expect(JSON.stringify(line)).not.toMatch(/ECONNREFUSED/);
      expect(logs.some((l) => l.msg === 'token review failed' && String(l['err']).includes('ECONNREFUSED'))).toBe(true);
    });

    it('a node agent impersonating an identity with no pod on its node (PERMISSION_DENIED)', async () => {
      const csr = await createCsr({ key: keys, spiffeUri: RATINGS });
      const md = metadata(`Bearer ${await token('amesh-system', 'amesh-node', { pod: 'amesh-node-1' })}`);
      const line = await expectRefused({ csr, metadata: stringStruct({ [IMPERSONATED_IDENTITY]: RATINGS }) }, md, grpc.status.PERMISSION_DENIED, /no pod of default\/ratings runs on node node-1/);
      expect(line).toMatchObject({ caller: AGENT, requested: RATINGS, clusterId: 'Kubernetes' });
    });

    it('a non-agent account using ImpersonatedIdentity (PERMISSION_DENIED)', async () => {
      const csr = await createCsr({ key: keys, spiffeUri: RATINGS });
      const md = metadata(`Bearer ${await token('default', 'reviews', { pod: 'reviews-1', node: 'node-2' })}`);
      const line = await expectRefused({ csr, metadata: stringStruct({ [IMPERSONATED_IDENTITY]: RATINGS }) }, md, grpc.status.PERMISSION_DENIED, /not a trusted node agent/);
      expect(line).toMatchObject({ caller: REVIEWS, requested: RATINGS });
    });

    it('a CSR for another identity than the caller’s (INVALID_ARGUMENT)', async () => {
      const csr = await createCsr({ key: keys, spiffeUri: RATINGS });
      await expectRefused({ csr }, metadata(`Bearer ${await token('default', 'reviews')}`), grpc.status.INVALID_ARGUMENT, /exactly one SAN/);
    });

    it('a CSR with extra SANs (INVALID_ARGUMENT)', async () => {
      const extra = await x509.Pkcs10CertificateRequestGenerator.create({
        keys,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
        extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: REVIEWS }, { type: 'dns', value: 'reviews.default.svc' }], true)],
      });
      await expectRefused({ csr: extra.toString('pem') }, metadata(`Bearer ${await token('default', 'reviews')}`), grpc.status.INVALID_ARGUMENT, /dns:reviews.default.svc/);
    });

    it('a CSR with the wrong key type (INVALID_ARGUMENT)', async () => {
      const p384 = (await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])) as CryptoKeyPairLike;
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        keys: p384,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-384' },
        extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: REVIEWS }], true)],
      });
      await expectRefused({ csr: csr.toString('pem') }, metadata(`Bearer ${await token('default', 'reviews')}`), grpc.status.INVALID_ARGUMENT, /P-384/);
    });

    it('a garbage CSR, and no CSR (INVALID_ARGUMENT)', async () => {
      const bearer = `Bearer ${await token('default', 'reviews')}`;
      await expectRefused({ csr: '-----BEGIN CERTIFICATE REQUEST-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE REQUEST-----\n' }, metadata(bearer), grpc.status.INVALID_ARGUMENT, /cannot parse/);
      await expectRefused({ csr: '' }, metadata(bearer), grpc.status.INVALID_ARGUMENT, /no CSR/);
    });

    it('a negative validity (INVALID_ARGUMENT)', async () => {
      const csr = await createCsr({ key: keys, spiffeUri: REVIEWS });
      await expectRefused({ csr, validityDuration: -1 }, metadata(`Bearer ${await token('default', 'reviews')}`), grpc.status.INVALID_ARGUMENT, /negative/);
    });

    it('a request over 64 KiB (RESOURCE_EXHAUSTED), before authenticating', async () => {
      await expectRefused({ csr: 'A'.repeat(70 * 1024) }, metadata(`Bearer ${await token('default', 'reviews')}`), grpc.status.RESOURCE_EXHAUSTED, /larger than|max/i);
    });
  });

  it('counts issued and refused calls', () => {
    const stats = server.stats();
    expect(stats.issued).toBe(4);
    expect(stats.refused).toMatchObject({ UNAUTHENTICATED: 5, UNAVAILABLE: 1, PERMISSION_DENIED: 2, INVALID_ARGUMENT: 6, RESOURCE_EXHAUSTED: 1 });
  });

  it('swaps the serving certificate in place: same port, new connections see the new one', async () => {
    const next = await createServingCertificates({ dnsNames: [SERVER_NAME], ipAddresses: ['127.0.0.1'] });
    await expect(server.setServingCertificate({ certChainPem: next.certPem, keyPem: serving.keyPem })).rejects.toThrow(/serving certificate/);
    await server.setServingCertificate({ certChainPem: next.certPem, keyPem: next.keyPem });
    const csr = await createCsr({ key: keys, spiffeUri: REVIEWS });
    const fresh = connect(next.caCertPem);
    const stale = connect(serving.caCertPem);
    try {
      const ok = await call({ csr }, metadata(`Bearer ${await token('default', 'reviews')}`), fresh);
      expect(ok.err).toBeNull();
      // The old CA no longer verifies the server: the TLS handshake fails, no call reaches the CA.
      const refused = await call({ csr }, metadata(`Bearer ${await token('default', 'reviews')}`), stale);
      expect(refused.err?.code).toBe(grpc.status.UNAVAILABLE);
      expect(refused.response).toBeUndefined();
    } finally {
      fresh.close();
      stale.close();
    }
  });
});
