/**
 * The controller's CA: Istio's `IstioCertificateService/CreateCertificate` over gRPC + TLS
 * (DESIGN §5). Node agents (amesh, ztunnel) authenticate with `authorization: Bearer <token>`;
 * the server only moves bytes and logs — who gets what is `authorize` (authorizer.ts), what a CSR
 * must look like is `checkCsr` (csr-check.ts), and the leaf is `createIssuer` (issuer.ts).
 *
 * Contract:
 * - Every refusal is one `warn` line ("certificate refused": caller, requested, code, reason) and
 *   every issuance one `info` line ("certificate issued": identity, serial, notAfter, caller,
 *   impersonating). That includes refusals grpc-js makes before our handler runs (a request over
 *   CA_MAX_REQUEST_BYTES is RESOURCE_EXHAUSTED), caught by a server interceptor.
 * - Clients never see a stack trace or an internal error message: failures inside the CA are
 *   logged in full and answered with a fixed INTERNAL/UNAVAILABLE message.
 * - `setServingCertificate` swaps the TLS certificate in place (new connections get it, open
 *   HTTP/2 connections keep theirs); the listener is not restarted and keeps its port.
 */
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { AmeshError, describeError } from '../../errors/amesh-error.js';
import { CA_MAX_REQUEST_BYTES, caServiceDefinition, CREATE_CERTIFICATE_PATH, IMPERSONATED_IDENTITY, structString, type IstioCertificateRequest, type IstioCertificateResponse } from '../../identity/ca-proto.js';
import { isValidTrustDomain } from '../../identity/spiffe.js';
import type { Logger } from '../../telemetry/logger.js';
import { authorize } from './authorizer.js';
import { checkCsr } from './csr-check.js';
import { createIssuer } from './issuer.js';
import { CA_TOKEN_AUDIENCE, DEFAULT_TRUSTED_NODE_AGENTS, type PodLocator, type SigningMaterialSource, type TokenReviewer } from './types.js';

const { status } = grpc;
const BEARER = /^Bearer\s+(\S+)\s*$/i;
/** How long `close()` lets in-flight calls finish before cutting them. */
const SHUTDOWN_GRACE_MS = 5_000;

export interface ServingCertificate {
  /** PEM: the server certificate, then its issuers. */
  certChainPem: string;
  keyPem: string;
}

export interface CaServerOptions {
  material: SigningMaterialSource;
  reviewer: TokenReviewer;
  pods: PodLocator;
  trustDomain: string;
  /** `<namespace>/<serviceAccount>`; default DEFAULT_TRUSTED_NODE_AGENTS. */
  trustedNodeAgents?: string[];
  /** Lifetime when the request asks for 0 seconds; default 24 h. */
  defaultTtlSeconds?: number;
  /** Longest lifetime granted; default 90 days. */
  maxTtlSeconds?: number;
  /** Token audiences accepted; default [CA_TOKEN_AUDIENCE]. */
  audiences?: string[];
  serving: ServingCertificate;
  log: Logger;
  /**
   * More gRPC services on the same listener (the delta ADS server, as istiod serves xDS and the CA
   * on 15012). `maxReceiveMessageBytes` raises the request limit of the whole listener, the CA's
   * method included (grpc-js has no per-method limit): a reconnecting agent's
   * initial_resource_versions outgrow a CSR.
   */
  extraServices?: Array<{ definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation; maxReceiveMessageBytes?: number }>;
}

export interface CaServerStats {
  issued: number;
  /** Refusals by gRPC status name (`PERMISSION_DENIED`: 3). */
  refused: Record<string, number>;
}

export interface CaServer {
  /** Binds `host:port` (port 0 = any; host default 0.0.0.0) and resolves with the bound port. */
  listen(port: number, host?: string): Promise<number>;
  /** Stops accepting calls, lets in-flight ones finish (bounded), then closes. */
  close(): Promise<void>;
  /** Serves a new TLS certificate to new connections, same listener and port. Rejects when the pair is unusable. */
  setServingCertificate(c: ServingCertificate): Promise<void>;
  stats(): CaServerStats;
}

/**
 * Server credentials whose certificate can be replaced at run time: grpc-js watches
 * ServerCredentials and calls `setSecureContext` on its TLS server when they change.
 */
class ReloadableServerCredentials extends grpc.ServerCredentials {
  constructor(serving: ServingCertificate) {
    super({ requestCert: false }, ReloadableServerCredentials.contextOptions(serving));
  }

  /** Throws when the certificate and key cannot be used together. */
  static contextOptions(serving: ServingCertificate): SecureContextOptions {
    const options = { cert: Buffer.from(serving.certChainPem), key: Buffer.from(serving.keyPem) };
    createSecureContext(options);
    return options;
  }

  update(serving: ServingCertificate): void {
    this.updateSecureContextOptions(ReloadableServerCredentials.contextOptions(serving));
  }

  override _equals(other: grpc.ServerCredentials): boolean {
    return this === other;
  }
}

/**
 * Reports statuses grpc-js sends before (or instead of) our handler — RESOURCE_EXHAUSTED for an
 * oversize request, INTERNAL for one that does not decode. grpc-js (1.14) calls `sendStatus` on
 * the innermost call object for those, so the wrapper sits there; statuses our handler sends pass
 * through the returned ServerInterceptingCall first and are already logged. If a grpc-js upgrade
 * moves that call, only the log line goes missing — the oversize test in ca-server.test.ts
 * notices.
 */
function unhandledRefusals(onRefusal: (code: grpc.status, details: string, peer: string) => void): grpc.ServerInterceptor {
  return (method, call) => {
    // Only the CA's own method: statuses of extra services on this listener are theirs to log.
    if (method.path !== CREATE_CERTIFICATE_PATH) return new grpc.ServerInterceptingCall(call);
    let fromHandler = false;
    const forward = call.sendStatus.bind(call);
    call.sendStatus = (s) => {
      if (!fromHandler && s.code !== status.OK) onRefusal(s.code, s.details ?? '', call.getPeer());
      forward(s);
    };
    return new grpc.ServerInterceptingCall(call, {
      sendStatus: (s, next) => {
        fromHandler = true;
        next(s);
      },
    });
  };
}

function bearerToken(metadata: grpc.Metadata): string | undefined {
  const values = metadata.get('authorization');
  if (values.length !== 1 || typeof values[0] !== 'string') return undefined;
  return BEARER.exec(values[0])?.[1];
}

function firstString(metadata: grpc.Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === 'string' ? value : undefined;
}

/** A refused call: the status, and a reason safe to show the caller. */
interface Refusal {
  refused: true;
  code: grpc.status;
  reason: string;
}

const refuse = (code: grpc.status, reason: string): Refusal => ({ refused: true, code, reason });

/** What the handler learnt about the caller, for the log line. */
interface CallContext {
  peer: string;
  clusterId?: string;
  caller?: string;
  requested?: string;
}

export function createCaServer(opts: CaServerOptions): CaServer {
  if (!isValidTrustDomain(opts.trustDomain)) throw new AmeshError('AMESH_CONFIG_INVALID', `CA trust domain ${JSON.stringify(opts.trustDomain)} is not a valid SPIFFE trust domain`);
  const log = opts.log.child({ component: 'ca-server' });
  const trustedNodeAgents = opts.trustedNodeAgents ?? DEFAULT_TRUSTED_NODE_AGENTS;
  const audiences = opts.audiences ?? [CA_TOKEN_AUDIENCE];
  const issuer = createIssuer({ material: opts.material, defaultTtlSeconds: opts.defaultTtlSeconds, maxTtlSeconds: opts.maxTtlSeconds });
  const credentials = new ReloadableServerCredentials(opts.serving);
  const counters: CaServerStats = { issued: 0, refused: {} };
  let server: grpc.Server | undefined;

  function countRefusal(code: grpc.status): void {
    const name = status[code] ?? String(code);
    counters.refused[name] = (counters.refused[name] ?? 0) + 1;
  }

  /** Decides and signs; refusals are values, only bugs throw. */
  async function createCertificate(request: IstioCertificateRequest, metadata: grpc.Metadata, context: CallContext): Promise<IstioCertificateResponse | Refusal> {
    context.clusterId = firstString(metadata, 'clusterid');
    const impersonated = structString(request.metadata, IMPERSONATED_IDENTITY);
    if (impersonated) context.requested = impersonated;
    const token = bearerToken(metadata);
    if (!token) return refuse(status.UNAUTHENTICATED, 'missing or malformed authorization metadata; expected "Bearer <service account token>"');
    let reviewed;
    try {
      reviewed = await opts.reviewer.review(token, audiences);
    } catch (err) {
      log.error({ err: describeError(err), peer: context.peer }, 'token review failed');
      return refuse(status.UNAVAILABLE, 'cannot review the token right now');
    }
    const decision = authorize({ token: reviewed, impersonatedIdentity: impersonated, trustDomain: opts.trustDomain, trustedNodeAgents, pods: opts.pods });
    if (decision.caller) context.caller = decision.caller;
    if (!decision.allow) return refuse(decision.code, decision.reason);
    context.requested = decision.identity;
    const requestedSeconds = Number(request.validityDuration ?? 0);
    if (!Number.isFinite(requestedSeconds) || requestedSeconds < 0) return refuse(status.INVALID_ARGUMENT, `validity_duration ${request.validityDuration} s must not be negative`);
    const csr = checkCsr(request.csr, decision.identity);
    if (!csr.ok) return refuse(status.INVALID_ARGUMENT, csr.reason);
    let issued;
    try {
      issued = await issuer.issue(csr.accepted, requestedSeconds);
    } catch (err) {
      log.error({ err: describeError(err), identity: decision.identity }, 'cannot sign');
      return refuse(status.INTERNAL, 'the CA cannot sign right now');
    }
    counters.issued++;
    log.info(
      { identity: decision.identity, serial: issued.serial, notAfter: issued.notAfter.toISOString(), caller: decision.caller, impersonating: decision.impersonating, clusterId: context.clusterId, peer: context.peer },
      'certificate issued',
    );
    return { certChain: issued.certChain };
  }

  const handlers: grpc.UntypedServiceImplementation = {
    CreateCertificate: (call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>, callback: grpc.sendUnaryData<IstioCertificateResponse>) => {
      const context: CallContext = { peer: call.getPeer() };
      createCertificate(call.request, call.metadata, context)
        .catch((err: unknown): Refusal => {
          log.error({ err: describeError(err), peer: context.peer }, 'unexpected failure in CreateCertificate');
          return refuse(status.INTERNAL, 'internal error');
        })
        .then((result) => {
          if (!('refused' in result)) return callback(null, result);
          countRefusal(result.code);
          log.warn({ ...context, code: status[result.code], reason: result.reason }, 'certificate refused');
          callback({ code: result.code, details: result.reason });
        });
    },
  };

  return {
    async listen(port, host = '0.0.0.0') {
      if (server) throw new AmeshError('AMESH_CONFIG_INVALID', 'the CA server is already listening');
      const extraServices = opts.extraServices ?? [];
      const s = new grpc.Server({
        'grpc.max_receive_message_length': Math.max(CA_MAX_REQUEST_BYTES, ...extraServices.map((e) => e.maxReceiveMessageBytes ?? 0)),
        // PINGs every 10 s, answered within 5 s: a client whose connection died without a FIN or RST
        // reaching us (killed under it, dropped by a NAT) is let go, and its xDS stream with it —
        // without them such streams stayed in /debug/syncz as STALE for minutes (sandbox-faults-net).
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
        interceptors: [
          unhandledRefusals((code, details, peer) => {
            countRefusal(code);
            log.warn({ peer, code: status[code], reason: details }, 'certificate refused');
          }),
        ],
      });
      s.addService(caServiceDefinition(), handlers);
      for (const extra of extraServices) s.addService(extra.definition, extra.implementation);
      const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
      try {
        const bound = await new Promise<number>((resolve, reject) => s.bindAsync(address, credentials, (err, p) => (err ? reject(err) : resolve(p))));
        server = s;
        log.info({ address: host, port: bound }, 'CA listening');
        return bound;
      } catch (err) {
        s.forceShutdown();
        const inUse = /EADDRINUSE|address already in use/i.test((err as Error).message);
        throw new AmeshError(inUse ? 'AMESH_PORT_IN_USE' : 'AMESH_CONFIG_INVALID', `cannot listen on ${address}: ${(err as Error).message}`, { cause: err });
      }
    },

    async close() {
      const s = server;
      server = undefined;
      if (!s) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          s.forceShutdown();
          resolve();
        }, SHUTDOWN_GRACE_MS);
        timer.unref();
        s.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },

    async setServingCertificate(c) {
      try {
        credentials.update(c);
      } catch (err) {
        throw new AmeshError('AMESH_CERT_FAILED', `cannot use the new CA serving certificate: ${(err as Error).message}`, { cause: err });
      }
      log.info('CA serving certificate replaced');
    },

    stats() {
      return { issued: counters.issued, refused: { ...counters.refused } };
    },
  };
}
