/**
 * Who may get which certificate — Istio's rules (security/pkg/server/ca: the Kubernetes JWT
 * authenticator and the node authorizer), as a pure decision over a reviewed token:
 *
 * - The caller is the service account of its token, `system:serviceaccount:<ns>:<sa>`, and its own
 *   identity is `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.
 * - Without `ImpersonatedIdentity` (or when it names the caller itself) the caller gets its own
 *   identity.
 * - A node agent may ask for another identity only if its account is a trusted node agent, its
 *   token is bound to a pod or node, and a pod of the impersonated namespace/service account runs
 *   on the caller's node. Anything the PodLocator cannot answer yet is UNAVAILABLE (retry), never
 *   an allow.
 */
import { status } from '@grpc/grpc-js';
import { parseSpiffeUri, toSpiffeUri } from '../../identity/spiffe.js';
import type { PodLocator, ReviewedToken } from './types.js';

const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;
export const EXTRA_POD_NAME = 'authentication.kubernetes.io/pod-name';
export const EXTRA_NODE_NAME = 'authentication.kubernetes.io/node-name';
export const EXTRA_POD_UID = 'authentication.kubernetes.io/pod-uid';

export interface AuthorizeInput {
  token: ReviewedToken;
  /** `metadata.ImpersonatedIdentity` of the request; empty or absent = the caller's own identity. */
  impersonatedIdentity?: string | undefined;
  trustDomain: string;
  /** `<namespace>/<serviceAccount>` of the node agents allowed to impersonate. */
  trustedNodeAgents: readonly string[];
  pods: PodLocator;
}

export type Decision =
  | { allow: true; identity: string; caller: string; impersonating: boolean }
  | { allow: false; code: status; reason: string; caller?: string };

function firstExtra(token: ReviewedToken, key: string): string | undefined {
  const value = token.extra?.[key]?.[0];
  return value ? value : undefined;
}

export function authorize(input: AuthorizeInput): Decision {
  const { token, trustDomain, pods } = input;
  if (!token.authenticated) return { allow: false, code: status.UNAUTHENTICATED, reason: token.error ?? 'the token is not authenticated' };
  const match = SERVICE_ACCOUNT_USER.exec(token.username ?? '');
  if (!match) return { allow: false, code: status.UNAUTHENTICATED, reason: `${JSON.stringify(token.username ?? '')} is not a service account` };
  const namespace = match[1] as string;
  const serviceAccount = match[2] as string;
  const caller = toSpiffeUri({ trustDomain, namespace, serviceAccount });
  if (!parseSpiffeUri(caller)) return { allow: false, code: status.UNAUTHENTICATED, reason: `service account ${namespace}/${serviceAccount} does not form a valid SPIFFE ID` };

  const requested = input.impersonatedIdentity;
  if (!requested || requested === caller) return { allow: true, identity: caller, caller, impersonating: false };

  const deny = (code: status, reason: string): Decision => ({ allow: false, code, reason, caller });
  const target = parseSpiffeUri(requested);
  if (!target) return deny(status.INVALID_ARGUMENT, `impersonated identity ${JSON.stringify(requested)} is not spiffe://<trust domain>/ns/<namespace>/sa/<service account>`);
  if (target.trustDomain !== trustDomain) return deny(status.PERMISSION_DENIED, `impersonated identity ${requested} is outside trust domain ${trustDomain}`);
  if (!input.trustedNodeAgents.includes(`${namespace}/${serviceAccount}`)) {
    return deny(status.PERMISSION_DENIED, `${namespace}/${serviceAccount} is not a trusted node agent and may not impersonate ${requested}`);
  }
  const podName = firstExtra(token, EXTRA_POD_NAME);
  let node = firstExtra(token, EXTRA_NODE_NAME);
  if (!podName && !node) return deny(status.PERMISSION_DENIED, 'the node agent token is not bound to a pod or node; impersonation needs a bound token');
  if (!pods.synced()) return deny(status.UNAVAILABLE, 'the pod cache is not synced yet');
  // A pod-bound token must still belong to the live pod of that name (as Istio checks): the token
  // of a deleted or replaced agent pod grants nothing, even where it also names a node.
  const podUid = firstExtra(token, EXTRA_POD_UID);
  if (podName && podUid) {
    const bound = pods.pod(namespace, podName);
    if (!bound) return deny(status.PERMISSION_DENIED, `the node agent pod ${namespace}/${podName} the token is bound to does not run (any more)`);
    if (bound.uid && bound.uid !== podUid) return deny(status.PERMISSION_DENIED, `the node agent pod ${namespace}/${podName} was replaced (uid ${bound.uid}, token bound to ${podUid})`);
  }
  if (!node) {
    const pod = pods.pod(namespace, podName as string);
    if (!pod) return deny(status.PERMISSION_DENIED, `the node agent pod ${namespace}/${podName} is not known`);
    if (pod.serviceAccount !== serviceAccount) return deny(status.PERMISSION_DENIED, `the node agent pod ${namespace}/${podName} runs as ${pod.serviceAccount}, not ${serviceAccount}`);
    if (!pod.nodeName) return deny(status.PERMISSION_DENIED, `the node agent pod ${namespace}/${podName} is not scheduled to a node`);
    node = pod.nodeName;
  }
  if (!pods.hasPodOnNode(node, target.namespace, target.serviceAccount)) {
    return deny(status.PERMISSION_DENIED, `no pod of ${target.namespace}/${target.serviceAccount} runs on node ${node}`);
  }
  return { allow: true, identity: requested, caller, impersonating: true };
}
