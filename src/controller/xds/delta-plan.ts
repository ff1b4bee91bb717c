/**
 * The pure half of a delta push: given what the store serves now and what a client holds (as far
 * as the server knows: its initial_resource_versions, then everything sent since), which
 * resources to send and which names to remove. Computing from the latest snapshot every time is
 * what lets a slow stream coalesce: it never replays a queue of stale pushes.
 */
import type { StoredResource } from './resource-store.js';

export interface ClientView {
  /** Wildcard subscription (Istio's ztunnel and our agent): every resource of the type. */
  wildcard: boolean;
  /** Explicitly subscribed names, honoured as a filter alongside `wildcard`. */
  names: ReadonlySet<string>;
  /** name → version the client holds. */
  held: ReadonlyMap<string, string>;
}

export interface PushPlan {
  /** Names whose current version the client does not hold, in snapshot order. */
  send: string[];
  /** Names the client holds that the store no longer serves. */
  remove: string[];
  /** Names the client holds but no longer subscribes to: forget them without telling it. */
  forget: string[];
}

export function planPush(current: ReadonlyMap<string, StoredResource>, view: ClientView): PushPlan {
  const wanted = (name: string): boolean => view.wildcard || view.names.has(name);
  const send: string[] = [];
  for (const [name, resource] of current) if (wanted(name) && view.held.get(name) !== resource.version) send.push(name);
  const remove: string[] = [];
  const forget: string[] = [];
  for (const name of view.held.keys()) {
    if (!current.has(name)) remove.push(name);
    else if (!wanted(name)) forget.push(name);
  }
  return { send, remove, forget };
}

/**
 * The names a NACK rejected. Our client writes `<name>: <reason>; <name>: <reason>`; a message
 * in any other form (ztunnel's, or a whole-response failure) rejects everything that was sent.
 */
export function rejectedNames(message: string, sent: readonly string[]): Set<string> {
  const names = new Set(sent);
  const named = new Set<string>();
  for (const part of message.split('; ')) {
    const colon = part.indexOf(': ');
    const name = colon > 0 ? part.slice(0, colon) : '';
    if (names.has(name)) named.add(name);
  }
  return named.size > 0 ? named : names;
}
