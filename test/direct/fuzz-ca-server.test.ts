/**
 * The CA server on hostile requests (issue #12): the real grpc-js server with TLS, real tokens,
 * and fast-check drawing the CSR (random text, random DER in a PEM, a valid CSR with flipped
 * bytes, CSRs for other identities or with extra SANs), the metadata (hostile and oversized
 * `authorization`, random ImpersonatedIdentity, many keys), and the lifetime asked for.
 *
 * Properties: every answer is a certificate or one of the refusal codes (INVALID_ARGUMENT,
 * UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED) — never INTERNAL / UNKNOWN, never a
 * stack trace in the details; a certificate is only ever issued for the caller's own identity
 * (one URI SAN, equal to it) with a lifetime within the cap; the bearer token and the CSR never
 * appear in a log line; and a valid request still works afterwards.
 */
import { X509Certificate } from 'node:crypto';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import * as x509 from '@peculiar/x509';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCaServer, type CaServer } from '../../src/controller/ca/ca-server.js';
import type { SigningMaterial, TokenReviewer } from '../../src/controller/ca/types.js';
import { caServiceDefinition, IMPERSONATED_IDENTITY, stringStruct, type IstioCertificateRequest, type IstioCertificateResponse } from '../../src/identity/ca-proto.js';
import { createCsr, generateCa, generateKeyPair, type CryptoKeyPairLike } from '../../src/identity/pki.js';
import { createServingCertificates, type ServingCertificates } from '../../src/sandbox/apiserver/serving-cert.js';
import { TokenAuthority } from '../../src/sandbox/apiserver/tokens.js';
import { FUZZ_SEED, fuzzCounter, hostileString } from '../helpers/fuzz-mutate.js';
import { podLocator } from '../helpers/ca-pods.js';

const SERVER_NAME = 'istiod.istio-system.svc';
const REVIEWS = 'spiffe://cluster.local/ns/default/sa/reviews';
const RATINGS = 'spiffe://cluster.local/ns/default/sa/ratings';
const AGENT = 'spiffe://cluster.local/ns/amesh-system/sa/amesh-node';
const MAX_TTL = 6 * 3600;
const REFUSALS = new Set([grpc.status.INVALID_ARGUMENT, grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED, grpc.status.RESOURCE_EXHAUSTED]);

type Callback = (err: grpc.ServiceError | null, response?: IstioCertificateResponse) => void;
interface CaClient extends grpc.Client {
  CreateCertificate(request: IstioCertificateRequest, metadata: grpc.Metadata, callback: Callback): grpc.ClientUnaryCall;
}
const CaClientConstructor = grpc.makeGenericClientConstructor(caServiceDefinition(), 'IstioCertificateService') as unknown as new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => CaClient;

const counter = fuzzCounter('CA server');
const logText: string[] = [];
let authority: TokenAuthority;
let serving: ServingCertificates;
let server: CaServer;
let client: CaClient;
let keys: CryptoKeyPairLike;
let validCsr: string;
let agentToken: string;
let reviewsToken: string;

const locator = podLocator();
const reviewer: TokenReviewer = {
  async review(token, audiences) {
    const r = await authority.verify(token, { audiences });
    if (!r.authenticated || !r.user) return { authenticated: false, error: r.error ?? 'unauthenticated' };
    return { authenticated: true, username: r.user.username, uid: r.user.uid, groups: r.user.groups, ...(r.user.extra ? { extra: r.user.extra } : {}) };
  },
};

beforeAll(async () => {
  authority = await TokenAuthority.create();
  serving = await createServingCertificates({ dnsNames: [SERVER_NAME], ipAddresses: ['127.0.0.1'] });
  const ca = await generateCa({ trustDomain: 'cluster.local', validityDays: 30 });
  const root: SigningMaterial = { certPem: ca.certPem, keyPem: ca.keyPem, chainPem: [], trustBundlePem: [ca.certPem] };
  keys = await generateKeyPair();
  validCsr = await createCsr({ key: keys, spiffeUri: REVIEWS });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logText.push(chunk.toString());
      done();
    },
  });
  server = createCaServer({ material: () => root, reviewer, pods: locator, trustDomain: 'cluster.local', maxTtlSeconds: MAX_TTL, serving: { certChainPem: serving.certPem, keyPem: serving.keyPem }, log: pino({ level: 'debug' }, sink) });
  const port = await server.listen(0, '127.0.0.1');
  client = new CaClientConstructor(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(serving.caCertPem)), { 'grpc.ssl_target_name_override': SERVER_NAME, 'grpc.default_authority': SERVER_NAME });
  const sa = (namespace: string, serviceAccount: string, pod: string): Promise<string> =>
    authority.issueServiceAccountToken({ namespace, serviceAccount, serviceAccountUid: `${serviceAccount}-uid`, audiences: ['istio-ca'], pod: { name: pod, uid: `${pod}-uid` } });
  reviewsToken = await sa('default', 'reviews', 'reviews-1');
  agentToken = await sa('amesh-system', 'amesh-node', 'amesh-node-1');
});

afterAll(async () => {
  counter.report();
  client?.close();
  await server?.close();
});

function call(request: IstioCertificateRequest, md: grpc.Metadata): Promise<{ err: grpc.ServiceError | null; response: IstioCertificateResponse | undefined }> {
  return new Promise((resolve) => {
    client.CreateCertificate(request, md, (err, response) => resolve({ err, response }));
  });
}

/** The answer is a refusal with a known code and a clean message, or a certificate for `identity` only, within the cap. */
function checkAnswer(answer: { err: grpc.ServiceError | null; response: IstioCertificateResponse | undefined }, identity: string | undefined): 'issued' | 'refused' {
  if (answer.err) {
    expect(REFUSALS.has(answer.err.code), `code ${grpc.status[answer.err.code]}: ${answer.err.details}`).toBe(true);
    expect(answer.err.details).not.toMatch(/\bat .*\.(ts|js):\d+/);
    return 'refused';
  }
  const leafPem = answer.response?.certChain[0] as string;
  expect(identity, 'a certificate was issued where none should be').toBeDefined();
  const sans = new x509.X509Certificate(leafPem).getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON();
  expect(sans).toEqual([{ type: 'url', value: identity }]);
  expect(new Date(new X509Certificate(leafPem).validTo).getTime() - Date.now()).toBeLessThanOrEqual(MAX_TTL * 1000 + 5000);
  return 'issued';
}

const pem = (der: Uint8Array, label = 'CERTIFICATE REQUEST'): string => `-----BEGIN ${label}-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END ${label}-----\n`;

describe('CA server on hostile requests (fast-check)', () => {
  it('random and corrupted CSRs: refused cleanly, never a certificate for another identity', { timeout: 60_000 }, async () => {
    const der = Buffer.from(new x509.Pkcs10CertificateRequest(validCsr).rawData);
    const otherKeys = await generateKeyPair();
    const ratingsCsr = await createCsr({ key: otherKeys, spiffeUri: RATINGS });
    const extraSans = (
      await x509.Pkcs10CertificateRequestGenerator.create({
        keys,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
        extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: REVIEWS }, { type: 'url', value: RATINGS }], true)],
      })
    ).toString('pem');
    const csr = fc.oneof(
      hostileString,
      fc.uint8Array({ maxLength: 600 }).map((b) => pem(b)),
      // The valid CSR with 1–4 bytes changed: the signature or the structure breaks.
      fc.array(fc.tuple(fc.nat(der.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }).map((flips) => {
        const copy = Buffer.from(der);
        for (const [at, xor] of flips) copy[at] = (copy[at] as number) ^ xor;
        return pem(copy);
      }),
      // Truncated.
      fc.nat(der.length - 1).map((n) => pem(der.subarray(0, n))),
      fc.constantFrom(ratingsCsr, extraSans, pem(der, 'CERTIFICATE'), `${validCsr}${validCsr}`, validCsr.replace(/\n/g, '\r\n'), ` ${validCsr}`),
    );
    const runs = 200;
    let issued = 0;
    await fc.assert(
      fc.asyncProperty(csr, fc.integer({ min: -5, max: 10 * 365 * 86400 }), async (text, validity) => {
        const md = new grpc.Metadata();
        md.set('authorization', `Bearer ${reviewsToken}`);
        const answer = await call({ csr: text, validityDuration: validity }, md);
        if (checkAnswer(answer, REVIEWS) === 'issued') {
          issued++;
          // Only the caller's own key and identity: a corrupted CSR never passes.
          expect(new x509.Pkcs10CertificateRequest(text).subjectName.toString()).toBeDefined();
        }
      }),
      { seed: FUZZ_SEED, numRuns: runs },
    );
    counter.add('random / corrupted CSRs (valid caller token)', runs);
    expect(issued).toBeLessThan(runs);
  });

  it('hostile metadata: tokens, impersonation, many and huge headers — never a certificate without a valid token', { timeout: 60_000 }, async () => {
    const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 80 });
    const bearer = fc.oneof(
      printable,
      printable.map((s) => `Bearer ${s}`),
      fc.constantFrom('Bearer', 'Bearer ', 'bearer ' + 'x', `Bearer ${'A'.repeat(20_000)}`, 'Basic dXNlcjpwYXNz'),
      fc.nat(60).map((n) => `Bearer ${'eyJhbGciOiJub25lIn0'}.${'e'.repeat(n)}.`),
      // A real token, altered.
      fc.tuple(fc.nat(), fc.constantFrom(...'ABCxyz019-_.')).map(([at, c]) => {
        const t = reviewsToken.split('');
        // Not the last character: its low bits may be padding, the signature would still verify.
        const i = at % (t.length - 1);
        t[i] = t[i] === c ? 'Q' : c;
        return `Bearer ${t.join('')}`;
      }),
    );
    const runs = 200;
    await fc.assert(
      fc.asyncProperty(
        bearer,
        fc.option(fc.oneof(hostileString, fc.constantFrom(REVIEWS, RATINGS, 'spiffe://other.domain/ns/default/sa/reviews'))),
        fc.dictionary(fc.constantFrom('x-a', 'x-b', 'clusterid', 'x-forwarded-for', 'x-impersonate'), printable, { maxKeys: 5 }),
        async (authorization, impersonate, extra) => {
          const md = new grpc.Metadata();
          md.set('authorization', authorization);
          for (const [k, v] of Object.entries(extra)) md.set(k, v);
          const request: IstioCertificateRequest = { csr: validCsr, validityDuration: 0, ...(impersonate !== null ? { metadata: stringStruct({ [IMPERSONATED_IDENTITY]: impersonate }) } : {}) };
          const answer = await call(request, md);
          // Only the untouched token of reviews may get reviews' certificate, and only for itself.
          const genuine = authorization === `Bearer ${reviewsToken}` && impersonate === null;
          checkAnswer(answer, genuine ? REVIEWS : undefined);
        },
      ),
      { seed: FUZZ_SEED, numRuns: runs },
    );
    counter.add('hostile metadata (authorization, ImpersonatedIdentity, extra keys)', runs);
  });

  it('a node agent’s token with random impersonation targets issues only for pods on its node', { timeout: 30_000 }, async () => {
    const runs = 60;
    const targets = fc.oneof(fc.constantFrom(REVIEWS, RATINGS, AGENT, 'spiffe://cluster.local/ns/default/sa/reviews/', 'spiffe://cluster.local/ns/default/sa/REVIEWS'), hostileString);
    await fc.assert(
      fc.asyncProperty(targets, async (target) => {
        const md = new grpc.Metadata();
        md.set('authorization', `Bearer ${agentToken}`);
        let csr = validCsr;
        try {
          csr = await createCsr({ key: keys, spiffeUri: target });
        } catch {
          // not a SPIFFE ID: send reviews' CSR with the odd target
        }
        const answer = await call({ csr, validityDuration: 0, metadata: stringStruct({ [IMPERSONATED_IDENTITY]: target }) }, md);
        // reviews and the agent itself run on the agent's node (node-1); nothing else may be issued.
        checkAnswer(answer, target === REVIEWS || target === AGENT ? target : undefined);
      }),
      { seed: FUZZ_SEED, numRuns: runs },
    );
    counter.add('node-agent impersonation targets', runs);
  });

  it('never logs a bearer token or a CSR, and still issues for a valid request', async () => {
    const all = logText.join('');
    expect(all.length).toBeGreaterThan(0);
    expect(all).not.toContain(reviewsToken);
    expect(all).not.toContain(agentToken);
    expect(all).not.toContain(reviewsToken.split('.')[2] as string); // not even the signature part
    expect(all).not.toContain(validCsr.split('\n')[1] as string);
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${reviewsToken}`);
    expect(checkAnswer(await call({ csr: validCsr, validityDuration: 0 }, md), REVIEWS)).toBe('issued');
    expect(server.stats().refused).not.toHaveProperty('INTERNAL');
    expect(server.stats().refused).not.toHaveProperty('UNKNOWN');
  });
});
