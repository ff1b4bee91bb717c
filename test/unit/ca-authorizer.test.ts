import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { authorize, EXTRA_NODE_NAME, EXTRA_POD_NAME, EXTRA_POD_UID, type AuthorizeInput } from '../../src/controller/ca/authorizer.js';
import { DEFAULT_TRUSTED_NODE_AGENTS, type PodLocator, type PodRef, type ReviewedToken } from '../../src/controller/ca/types.js';

const TD = 'cluster.local';
const AGENT = 'system:serviceaccount:amesh-system:amesh-node';
const AGENT_ID = 'spiffe://cluster.local/ns/amesh-system/sa/amesh-node';
const REVIEWS = 'spiffe://cluster.local/ns/default/sa/reviews';

/** node-1 runs the agent pod and a reviews pod; node-2 runs a ratings pod. */
function locator(synced = true): PodLocator {
  const pods: PodRef[] = [
    { namespace: 'amesh-system', name: 'amesh-node-abc', uid: 'uid-abc', serviceAccount: 'amesh-node', nodeName: 'node-1' },
    { namespace: 'amesh-system', name: 'amesh-node-unscheduled', serviceAccount: 'amesh-node' },
    { namespace: 'amesh-system', name: 'impostor', serviceAccount: 'default', nodeName: 'node-1' },
    { namespace: 'default', name: 'reviews-1', serviceAccount: 'reviews', nodeName: 'node-1' },
    { namespace: 'default', name: 'ratings-1', serviceAccount: 'ratings', nodeName: 'node-2' },
  ];
  return {
    pod: (namespace, name) => pods.find((p) => p.namespace === namespace && p.name === name),
    hasPodOnNode: (node, namespace, sa) => pods.some((p) => p.nodeName === node && p.namespace === namespace && p.serviceAccount === sa),
    synced: () => synced,
  };
}

function token(username: string, extra?: Record<string, string[]>): ReviewedToken {
  return { authenticated: true, username, uid: 'u-1', groups: ['system:serviceaccounts'], ...(extra ? { extra } : {}) };
}
const podBound = (pod: string): Record<string, string[]> => ({ [EXTRA_POD_NAME]: [pod] });
const nodeBound = (node: string): Record<string, string[]> => ({ [EXTRA_NODE_NAME]: [node] });
/** What kube-apiserver puts in a pod-bound token: pod name and uid, and the node. */
const fullyBound = (pod: string, uid: string, node: string): Record<string, string[]> => ({ [EXTRA_POD_NAME]: [pod], [EXTRA_POD_UID]: [uid], [EXTRA_NODE_NAME]: [node] });

interface Row {
  name: string;
  token: ReviewedToken;
  impersonate?: string;
  synced?: boolean;
  trustedNodeAgents?: string[];
  /** Fields the decision must have; `reason` is matched as a pattern. */
  want: { allow: boolean; identity?: string; caller?: string; impersonating?: boolean; code?: status; reason?: RegExp | string };
}

const rows: Row[] = [
  {
    name: 'a fully bound agent token of the live pod may impersonate on its node',
    token: token(AGENT, fullyBound('amesh-node-abc', 'uid-abc', 'node-1')),
    impersonate: REVIEWS,
    want: { allow: true, identity: REVIEWS, impersonating: true },
  },
  {
    name: 'the token of a replaced agent pod (same name, other uid) may not impersonate',
    token: token(AGENT, fullyBound('amesh-node-abc', 'uid-old', 'node-1')),
    impersonate: REVIEWS,
    want: { allow: false, code: status.PERMISSION_DENIED, reason: /was replaced/ },
  },
  {
    name: 'the token of a deleted agent pod may not impersonate, although it names the node',
    token: token(AGENT, fullyBound('amesh-node-gone', 'uid-gone', 'node-1')),
    impersonate: REVIEWS,
    want: { allow: false, code: status.PERMISSION_DENIED, reason: /does not run/ },
  },
  { name: 'a workload gets its own identity', token: token('system:serviceaccount:default:reviews'), want: { allow: true, identity: REVIEWS, caller: REVIEWS, impersonating: false } },
  {
    name: 'ImpersonatedIdentity equal to the caller is its own identity',
    token: token('system:serviceaccount:default:reviews'),
    impersonate: REVIEWS,
    want: { allow: true, identity: REVIEWS, impersonating: false },
  },
  { name: 'an empty ImpersonatedIdentity is ignored', token: token('system:serviceaccount:default:reviews'), impersonate: '', want: { allow: true, identity: REVIEWS } },
  { name: 'the agent gets its own identity without impersonating', token: token(AGENT, podBound('amesh-node-abc')), want: { allow: true, identity: AGENT_ID, impersonating: false } },
  {
    name: 'an unauthenticated token',
    token: { authenticated: false, error: 'invalid bearer token: token has expired' },
    want: { allow: false, code: status.UNAUTHENTICATED, reason: 'invalid bearer token: token has expired' },
  },
  { name: 'a user that is not a service account', token: token('admin'), want: { allow: false, code: status.UNAUTHENTICATED, reason: /not a service account/ } },
  { name: 'no username at all', token: { authenticated: true }, want: { allow: false, code: status.UNAUTHENTICATED } },
  {
    name: 'a service account name that is no SPIFFE path segment',
    token: token('system:serviceaccount:default:bad name'),
    want: { allow: false, code: status.UNAUTHENTICATED, reason: /valid SPIFFE ID/ },
  },
  {
    name: 'agent (pod-bound) impersonates a pod on its node',
    token: token(AGENT, podBound('amesh-node-abc')),
    impersonate: REVIEWS,
    want: { allow: true, identity: REVIEWS, caller: AGENT_ID, impersonating: true },
  },
  {
    name: 'agent (node-bound) impersonates a pod on its node',
    token: token(AGENT, nodeBound('node-2')),
    impersonate: 'spiffe://cluster.local/ns/default/sa/ratings',
    want: { allow: true, impersonating: true },
  },
  {
    name: 'the node-name claim wins over the pod lookup',
    token: token(AGENT, { ...podBound('amesh-node-abc'), ...nodeBound('node-2') }),
    impersonate: REVIEWS,
    want: { allow: false, code: status.PERMISSION_DENIED, reason: /no pod of default\/reviews runs on node node-2/ },
  },
  { name: 'ztunnel is trusted by default', token: token('system:serviceaccount:istio-system:ztunnel', nodeBound('node-1')), impersonate: REVIEWS, want: { allow: true, impersonating: true } },
  {
    name: 'agent impersonates an identity with no pod on its node',
    token: token(AGENT, podBound('amesh-node-abc')),
    impersonate: 'spiffe://cluster.local/ns/default/sa/ratings',
    want: { allow: false, code: status.PERMISSION_DENIED, reason: /no pod of default\/ratings runs on node node-1/, caller: AGENT_ID },
  },
  {
    name: 'a non-agent account impersonates',
    token: token('system:serviceaccount:default:reviews', podBound('reviews-1')),
    impersonate: 'spiffe://cluster.local/ns/default/sa/ratings',
    want: { allow: false, code: status.PERMISSION_DENIED, reason: /default\/reviews is not a trusted node agent/ },
  },
  {
    name: 'the agent list is configurable',
    token: token(AGENT, podBound('amesh-node-abc')),
    impersonate: REVIEWS,
    trustedNodeAgents: ['kube-system/other-agent'],
    want: { allow: false, code: status.PERMISSION_DENIED, reason: /not a trusted node agent/ },
  },
  {
    name: 'agent token not bound to a pod or node',
    token: token(AGENT),
    impersonate: REVIEWS,
    want: { allow: false, code: status.PERMISSION_DENIED, reason: /not bound to a pod or node/ },
  },
  {
    name: 'agent bound to an unknown pod',
    token: token(AGENT, podBound('gone')),
    impersonate: REVIEWS,
    want: { allow: false, code: status.PERMISSION_DENIED, reason: /amesh-system\/gone is not known/ },
  },
  {
    name: 'agent token bound to a pod running as another account',
    token: token(AGENT, podBound('impostor')),
    impersonate: REVIEWS,
    want: { allow: false, code: status.PERMISSION_DENIED, reason: /runs as default, not amesh-node/ },
  },
  {
    name: 'agent pod not scheduled',
    token: token(AGENT, podBound('amesh-node-unscheduled')),
    impersonate: REVIEWS,
    want: { allow: false, code: status.PERMISSION_DENIED, reason: /not scheduled/ },
  },
  {
    name: 'pod cache not synced',
    token: token(AGENT, podBound('amesh-node-abc')),
    impersonate: REVIEWS,
    synced: false,
    want: { allow: false, code: status.UNAVAILABLE, reason: /not synced/ },
  },
  {
    name: 'impersonated identity in another trust domain',
    token: token(AGENT, podBound('amesh-node-abc')),
    impersonate: 'spiffe://example.org/ns/default/sa/reviews',
    want: { allow: false, code: status.PERMISSION_DENIED, reason: /outside trust domain cluster.local/ },
  },
  {
    name: 'impersonated identity that is no Istio SPIFFE ID',
    token: token(AGENT, podBound('amesh-node-abc')),
    impersonate: 'spiffe://cluster.local/workload/reviews',
    want: { allow: false, code: status.INVALID_ARGUMENT, reason: /is not spiffe:\/\/<trust domain>/ },
  },
  {
    name: 'impersonated identity that is not a URI',
    token: token(AGENT, podBound('amesh-node-abc')),
    impersonate: 'reviews',
    want: { allow: false, code: status.INVALID_ARGUMENT },
  },
];

describe('authorize', () => {
  it.each(rows)('$name', (row) => {
    const input: AuthorizeInput = {
      token: row.token,
      impersonatedIdentity: row.impersonate,
      trustDomain: TD,
      trustedNodeAgents: row.trustedNodeAgents ?? DEFAULT_TRUSTED_NODE_AGENTS,
      pods: locator(row.synced ?? true),
    };
    const decision = authorize(input);
    const { reason, ...rest } = row.want;
    expect(decision).toMatchObject(rest);
    if (reason !== undefined) {
      expect(decision.allow).toBe(false);
      if (!decision.allow) expect(decision.reason).toMatch(reason);
    }
  });
});
