/**
 * A small stand-in for the mesh CA (IstioCertificateService over gRPC + TLS on 127.0.0.1:0),
 * independent of the real CA server: it signs with pki.ts's `signCsr`, records what callers
 * sent, and can be told to refuse, answer wrongly, or go down.
 *
 * "Down" is a TCP front door that resets every connection, so the gRPC client sees what it sees
 * when the CA pod is gone, while the address (and port) stays the same for the comeback.
 */
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { caServiceDefinition, IMPERSONATED_IDENTITY, structString, type IstioCertificateRequest, type IstioCertificateResponse } from '../../src/identity/ca-proto.js';
import { createCsr, generateCa, generateKeyPair, loadCa, signCsr, type CaMaterial, type SigningCa } from '../../src/identity/pki.js';
import { createServingCertificates } from '../../src/sandbox/apiserver/serving-cert.js';

/** The DNS name on the fake CA's serving certificate (besides IP 127.0.0.1). */
export const FAKE_CA_SERVER_NAME = 'istiod.istio-system.svc';

export interface RecordedRequest {
  authorization: string | undefined;
  clusterId: string | undefined;
  impersonated: string | undefined;
  validityDuration: number;
}

export type FakeCaBehaviour =
  | { kind: 'sign' }
  | { kind: 'fail'; code: grpc.status; details: string }
  /** Signs a certificate for `identity` with a key of its own (wrong identity and key). */
  | { kind: 'other-identity'; identity: string }
  /** Signs the right identity, but for a key of its own. */
  | { kind: 'other-key' }
  | { kind: 'empty-chain' };

export interface FakeCa {
  /** `127.0.0.1:<port>` of the front door. */
  address: string;
  /** Mesh root the CA signs with. */
  root: CaMaterial;
  /** Root file for the client: the serving CA + the mesh root. */
  rootCertFile: string;
  /** Just the serving CA's certificate PEM. */
  servingCaPem: string;
  tokenFile: string;
  dir: string;
  requests: RecordedRequest[];
  behaviour: FakeCaBehaviour;
  /** Workload certificate lifetime when the request asks for 0. */
  defaultTtlSeconds: number;
  setDown(down: boolean): void;
  close(): Promise<void>;
}

export async function startFakeCa(opts: { root?: CaMaterial } = {}): Promise<FakeCa> {
  const dir = await mkdtemp(join(tmpdir(), 'amesh-fake-ca-'));
  const root = opts.root ?? (await generateCa({ trustDomain: 'cluster.local', validityDays: 1 }));
  const signing: SigningCa = await loadCa(root);
  const serving = await createServingCertificates({ ipAddresses: ['127.0.0.1'], dnsNames: [FAKE_CA_SERVER_NAME], days: 1 });
  const rootCertFile = join(dir, 'root-cert.pem');
  const tokenFile = join(dir, 'istio-token');
  await writeFile(rootCertFile, serving.caCertPem + root.certPem);
  await writeFile(tokenFile, 'token-1\n');

  const fake: FakeCa = {
    address: '',
    root,
    rootCertFile,
    servingCaPem: serving.caCertPem,
    tokenFile,
    dir,
    requests: [],
    behaviour: { kind: 'sign' },
    defaultTtlSeconds: 3600,
    setDown: () => undefined,
    close: async () => undefined,
  };

  const sign = async (csrPem: string, ttlSeconds: number): Promise<string> => signCsr({ ca: signing, csrPem, ttlSeconds });
  const foreignCsr = async (identity: string): Promise<string> => createCsr({ key: await generateKeyPair(), spiffeUri: identity });

  const server = new grpc.Server();
  server.addService(caServiceDefinition(), {
    CreateCertificate: (call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, callback: grpc.sendUnaryData<IstioCertificateResponse>) => {
      const md = call.metadata;
      const impersonated = structString(call.request.metadata, IMPERSONATED_IDENTITY);
      fake.requests.push({
        authorization: md.get('authorization')[0]?.toString(),
        clusterId: md.get('clusterid')[0]?.toString(),
        impersonated,
        validityDuration: call.request.validityDuration,
      });
      const ttl = call.request.validityDuration || fake.defaultTtlSeconds;
      const b = fake.behaviour;
      const answer = async (): Promise<string[]> => {
        switch (b.kind) {
          case 'fail':
            throw Object.assign(new Error(b.details), { code: b.code, details: b.details });
          case 'other-identity':
            return [await sign(await foreignCsr(b.identity), ttl), root.certPem];
          case 'other-key':
            return [await sign(await foreignCsr(impersonated ?? ''), ttl), root.certPem];
          case 'empty-chain':
            return [];
          case 'sign':
            return [await sign(call.request.csr, ttl), root.certPem];
        }
      };
      answer().then(
        (certChain) => callback(null, { certChain }),
        (err: Error & { code?: grpc.status; details?: string }) => callback({ code: err.code ?? grpc.status.INTERNAL, details: err.details ?? err.message }),
      );
    },
  });
  const credentials = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(serving.keyPem), cert_chain: Buffer.from(serving.certPem) }], false);
  const grpcPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, port) => (err ? reject(err) : resolve(port))));

  // The front door: forwards to the gRPC port, or resets everything while "down".
  let down = false;
  const live = new Set<net.Socket>();
  const door = net.createServer((socket) => {
    socket.on('error', () => undefined);
    if (down) {
      socket.resetAndDestroy();
      return;
    }
    const upstream = net.connect(grpcPort, '127.0.0.1');
    upstream.on('error', () => socket.destroy());
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
    live.add(socket);
    socket.on('close', () => live.delete(socket));
    socket.pipe(upstream).pipe(socket);
  });
  door.listen(0, '127.0.0.1');
  await once(door, 'listening');
  fake.address = `127.0.0.1:${(door.address() as net.AddressInfo).port}`;
  fake.setDown = (value) => {
    down = value;
    if (value) for (const s of live) s.resetAndDestroy();
  };
  fake.close = async () => {
    for (const s of live) s.destroy();
    await new Promise<void>((resolve) => door.close(() => resolve()));
    server.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  };
  return fake;
}
