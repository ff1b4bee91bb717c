/**
 * The stunnel4 comparator: a client-mode stunnel in the client pod (listening on 127.0.0.1) and a
 * server-mode stunnel in the server pod forwarding to the local backend — two TLS proxies, like
 * amesh's two node agents. Mutual TLS 1.3 with the same ECDSA P-256 material amesh uses (issued by
 * `amesh ca issue`), AES-GCM suites only (amesh's set), `verifyChain` against the mesh root plus
 * `verifyPeer` (the peer's leaf must also be listed locally, BENCHMARKS.md), no SNI (HBONE sends
 * none), TCP_NODELAY on both sides. stunnel runs a thread per connection; its thread count cannot
 * be pinned to amesh's.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SpawnedProcess, Topology } from '../../src/sandbox/network/topology.js';

export interface StunnelService {
  name: string;
  /** host:port to listen on. */
  accept: string;
  /** host:port to forward to. */
  connect: string;
}

export interface StunnelConfigSpec {
  role: 'client' | 'server';
  certFile: string;
  keyFile: string;
  /** Mesh root + the peer's leaf certificate. */
  trustFile: string;
  logFile: string;
  services: readonly StunnelService[];
}

export function stunnelConfig(spec: StunnelConfigSpec): string {
  const global = [
    '; written by amesh bench; one process per side, kept in the foreground so its pid is ours to measure',
    'foreground = yes',
    'pid =',
    // info logs the negotiated suite once per connection; the scenarios hold few connections.
    'debug = info',
    `output = ${spec.logFile}`,
  ];
  const service = (s: StunnelService): string[] => [
    '',
    `[${s.name}]`,
    ...(spec.role === 'client' ? ['client = yes', 'sni ='] : []),
    `accept = ${s.accept}`,
    `connect = ${s.connect}`,
    `cert = ${spec.certFile}`,
    `key = ${spec.keyFile}`,
    `CAfile = ${spec.trustFile}`,
    'verifyChain = yes',
    'verifyPeer = yes',
    'sslVersionMin = TLSv1.3',
    'sslVersionMax = TLSv1.3',
    'ciphersuites = TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256',
    'socket = l:TCP_NODELAY=1',
    'socket = r:TCP_NODELAY=1',
  ];
  return `${[...global, ...spec.services.flatMap(service)].join('\n')}\n`;
}

/** The first PEM certificate in a bundle (the leaf of `amesh ca issue`'s cert.pem). */
export function firstCertificate(pem: string): string {
  const match = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(pem);
  if (!match) throw new Error('no PEM certificate found');
  return match[0].endsWith('\n') ? match[0] : `${match[0]}\n`;
}

/** "TLSv1.3 TLS_AES_256_GCM_SHA384, X25519" from a stunnel log at debug = info. */
export function negotiatedTls(log: string): string | undefined {
  const suite = /(TLSv[\d.]+) ciphersuite: (\S+)/.exec(log);
  if (!suite) return undefined;
  const key = /Peer temporary key: ([^,\n]+)/.exec(log);
  return `${suite[1]} ${suite[2]}${key ? `, ${key[1]!.trim()}` : ''}`;
}

export interface IssuedIdentity {
  /** Directory written by `amesh ca issue`: cert.pem (leaf + root), key.pem, root.pem. */
  dir: string;
}

export interface StunnelPairSpec {
  topology: Topology;
  dir: string;
  clientNs: string;
  serverNs: string;
  serverIp: string;
  client: IssuedIdentity;
  server: IssuedIdentity;
  /** Each tunnel: client listens on 127.0.0.1:clientPort, server on serverPort, forwards to 127.0.0.1:targetPort. */
  tunnels: readonly { name: string; clientPort: number; serverPort: number; targetPort: number }[];
}

export interface StunnelPair {
  client: SpawnedProcess;
  server: SpawnedProcess;
  clientLog: string;
}

export async function startStunnelPair(spec: StunnelPairSpec): Promise<StunnelPair> {
  const trust = async (self: IssuedIdentity, peer: IssuedIdentity, file: string): Promise<string> => {
    const [root, peerChain] = await Promise.all([readFile(join(self.dir, 'root.pem'), 'utf8'), readFile(join(peer.dir, 'cert.pem'), 'utf8')]);
    const path = join(spec.dir, file);
    await writeFile(path, `${root.endsWith('\n') ? root : `${root}\n`}${firstCertificate(peerChain)}`);
    return path;
  };
  const write = async (role: 'client' | 'server', self: IssuedIdentity, peer: IssuedIdentity): Promise<{ config: string; log: string }> => {
    const log = join(spec.dir, `stunnel-${role}.log`);
    const services = spec.tunnels.map((t) =>
      role === 'client'
        ? { name: t.name, accept: `127.0.0.1:${t.clientPort}`, connect: `${spec.serverIp}:${t.serverPort}` }
        : { name: t.name, accept: `0.0.0.0:${t.serverPort}`, connect: `127.0.0.1:${t.targetPort}` },
    );
    const config = join(spec.dir, `stunnel-${role}.conf`);
    const text = stunnelConfig({
      role,
      certFile: join(self.dir, 'cert.pem'),
      keyFile: join(self.dir, 'key.pem'),
      trustFile: await trust(self, peer, `stunnel-${role}-trust.pem`),
      logFile: log,
      services,
    });
    await writeFile(config, text);
    return { config, log };
  };
  const serverFiles = await write('server', spec.server, spec.client);
  const clientFiles = await write('client', spec.client, spec.server);
  const spawn = (ns: string, role: string, config: string): SpawnedProcess =>
    spec.topology.spawn(ns, ['stunnel', config], { stdoutFile: join(spec.dir, `stunnel-${role}.out`), stderrFile: join(spec.dir, `stunnel-${role}.out`) });
  const server = spawn(spec.serverNs, 'server', serverFiles.config);
  const client = spawn(spec.clientNs, 'client', clientFiles.config);
  return { client, server, clientLog: clientFiles.log };
}
