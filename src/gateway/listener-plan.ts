/**
 * A gateway config's `listeners`, ready to execute: per port its protocol, the TLS contexts of an
 * HTTPS listener (SNI → SecureContext, prebuilt) and the L4 routes of a TLS / TCP listener with
 * their cumulative weights. Built once per config (`buildListenerPlan`), swapped atomically with
 * the route state; a connection looks the plan up once when it is accepted and keeps it.
 *
 * Certificates: a SecureContext is built once per distinct (chain, key) content and cached across
 * configs (SecureContextCache), so an unchanged Secret costs nothing on a config update and a
 * rotated one (new PEMs) is used by every handshake after the update — no restart, and
 * connections already established keep theirs. A certificate whose PEMs Node refuses is left out
 * of its listener with the reason (config dump, log); an HTTPS listener left with none refuses
 * handshakes, the other listeners are unaffected.
 */
import tls from 'node:tls';
import type { GatewayCertificate, GatewayListener, L4Route, WeightedBackend } from '../l7/config.js';
import { pickWeightedIndex } from '../l7/router.js';
import { firstMatching, selectBySni } from './sni-match.js';

/** TLS 1.2 is the floor at the edge (Istio's gateway default minProtocolVersion). */
export const GATEWAY_MIN_TLS_VERSION = 'TLSv1.2' as const;

export interface CompiledCertificate {
  certificate: GatewayCertificate;
  context: tls.SecureContext;
}

export interface TlsTermination {
  /** Usable certificates, in config order. */
  certificates: CompiledCertificate[];
  /** Certificates left out: `name: reason`. */
  errors: string[];
  /** The context for a handshake with this SNI (most specific hostname; none/no match → first). */
  contextFor(serverName: string | undefined): tls.SecureContext | undefined;
}

export interface CompiledL4Route {
  route: L4Route;
  cumulative: number[];
  totalWeight: number;
}

export interface CompiledListener {
  listener: GatewayListener;
  tls?: TlsTermination;
  l4Routes: CompiledL4Route[];
}

export interface ListenerPlan {
  /** By the config's port. */
  byPort: ReadonlyMap<number, CompiledListener>;
}

/** Node SecureContexts by certificate content; `retain` drops the ones no config uses any more. */
export class SecureContextCache {
  private readonly contexts = new Map<string, tls.SecureContext>();

  private static key(c: Pick<GatewayCertificate, 'certChain' | 'privateKey'>): string {
    return `${c.certChain}\u0000${c.privateKey}`;
  }

  /** The context for these PEMs (built on first use); throws when Node refuses them. */
  get(c: Pick<GatewayCertificate, 'certChain' | 'privateKey'>): tls.SecureContext {
    const key = SecureContextCache.key(c);
    let context = this.contexts.get(key);
    if (!context) {
      context = tls.createSecureContext({ cert: c.certChain, key: c.privateKey, minVersion: GATEWAY_MIN_TLS_VERSION });
      this.contexts.set(key, context);
    }
    return context;
  }

  retain(plan: ListenerPlan): void {
    const keep = new Set<string>();
    for (const l of plan.byPort.values()) for (const c of l.tls?.certificates ?? []) keep.add(SecureContextCache.key(c.certificate));
    for (const key of this.contexts.keys()) if (!keep.has(key)) this.contexts.delete(key);
  }

  get size(): number {
    return this.contexts.size;
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? 'invalid';
}

function compileTls(certificates: readonly GatewayCertificate[], cache: SecureContextCache): TlsTermination {
  const usable: CompiledCertificate[] = [];
  const errors: string[] = [];
  for (const certificate of certificates) {
    try {
      usable.push({ certificate, context: cache.get(certificate) });
    } catch (err) {
      errors.push(`${certificate.name}: ${firstLine(err)}`);
    }
  }
  const patterns = (c: CompiledCertificate): readonly string[] => c.certificate.hostnames;
  // One listener with one certificate is the common case: no search per handshake.
  const only = usable.length === 1 ? usable[0]?.context : undefined;
  return {
    certificates: usable,
    errors,
    contextFor: only ? () => only : (serverName) => selectBySni(usable, patterns, serverName)?.context,
  };
}

function compileL4(route: L4Route): CompiledL4Route {
  const cumulative: number[] = [];
  let total = 0;
  for (const b of route.backends) {
    total += b.weight > 0 ? b.weight : 0;
    cumulative.push(total);
  }
  return { route, cumulative, totalWeight: total };
}

/** Compiles `listeners` (validated by the config schema); never throws for a bad certificate. */
export function buildListenerPlan(listeners: readonly GatewayListener[], cache: SecureContextCache): ListenerPlan {
  const byPort = new Map<number, CompiledListener>();
  for (const listener of listeners) {
    byPort.set(listener.port, {
      listener,
      ...(listener.protocol === 'HTTPS' ? { tls: compileTls(listener.certificates ?? [], cache) } : {}),
      l4Routes: (listener.l4Routes ?? []).map(compileL4),
    });
  }
  return { byPort };
}

/** The L4 route of a TLS (by SNI, first match) or TCP (first route) connection. */
export function l4RouteFor(l: CompiledListener, serverName: string | undefined): CompiledL4Route | undefined {
  if (l.listener.protocol === 'TCP') return l.l4Routes[0];
  return firstMatching(l.l4Routes, (r) => r.route.hostnames, serverName);
}

/** One backend of an L4 route by weight; undefined when every weight is 0. */
export function pickL4Backend(r: CompiledL4Route, random: () => number): WeightedBackend | undefined {
  const i = pickWeightedIndex(r.cumulative, r.totalWeight, random);
  return i < 0 ? undefined : r.route.backends[i];
}
