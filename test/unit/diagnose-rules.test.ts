import { describe, expect, it } from 'vitest';
import { diagnose, formatDiagnosis, groupDenials, relevantDenials, type DiagnoseFacts, type DenialFact } from '../../src/cli/inspect/diagnose-rules.js';

const NOW = Date.parse('2026-12-02T16:00:00Z');

function healthy(): DiagnoseFacts {
  return {
    pod: {
      namespace: 'demo',
      name: 'backend-1',
      uid: 'u-backend',
      phase: 'Running',
      ready: { status: true, message: '' },
      deleting: false,
      hostNetwork: false,
      node: 'w1',
      ip: '10.244.1.3',
      serviceAccount: 'backend-sa',
      labels: { app: 'backend' },
      annotations: { 'ambient.istio.io/redirection': 'enabled' },
    },
    namespaceLabels: { 'istio.io/dataplane-mode': 'ambient' },
    trustDomain: 'cluster.local',
    services: [{ name: 'backend' }],
    waypoints: [],
    peerAuthentications: [],
    authorizationPolicies: [],
    controller: { running: 1, total: 1 },
    agent: {
      pod: 'amesh-system/amesh-node-a',
      running: true,
      dump: {
        workloadKnown: true,
        workloadProtocol: 'HBONE',
        certificate: { state: 'Available', valid: true, notAfter: '2026-12-03T15:00:00Z', error: '' },
        caAddress: 'amesh-controller.amesh-system.svc:15012',
        caProblem: '',
        xds: { connected: true, lastError: '', address: 'amesh-controller.amesh-system.svc:15012' },
      },
      denials: [],
    },
  };
}

type Mutate = (f: DiagnoseFacts) => void;
const facts = (m: Mutate): DiagnoseFacts => {
  const f = healthy();
  m(f);
  return f;
};
const codes = (f: DiagnoseFacts): string[] => diagnose(f).findings.filter((x) => x.severity !== 'info').map((x) => x.code);
const finding = (f: DiagnoseFacts, code: string) => diagnose(f).findings.find((x) => x.code === code);

const denial = (o: Partial<DenialFact> = {}): DenialFact => ({
  time: '2026-12-02T15:59:00.000Z',
  direction: 'inbound',
  src: '10.244.1.4:41000',
  dst: '10.244.1.3:8080',
  sourceIdentity: 'spiffe://cluster.local/ns/demo/sa/default',
  destinationWorkload: 'u-backend',
  policy: 'demo/deny-client',
  rule: 'rule 0: from principals [cluster.local/ns/demo/sa/default]',
  reason: 'denied by DENY policy demo/deny-client',
  ...o,
});

describe('diagnose rules', () => {
  it('healthy: one summary line, exit 0', () => {
    const d = diagnose(healthy());
    expect(d.healthy).toBe(true);
    expect(d.findings[0]?.code).toBe('healthy');
    expect(d.findings[0]?.what).toContain('spiffe://cluster.local/ns/demo/sa/backend-sa valid until 2026-12-03T15:00:00Z; no recent denials');
    expect(d.findings.map((x) => x.code)).toEqual(['healthy', 'services']);
  });

  it.each<[string, Mutate, string[], RegExp, RegExp]>([
    ['namespace not labelled', (f) => (f.namespaceLabels = {}), ['namespace-not-enrolled'], /namespace demo is not enrolled/, /^kubectl label namespace demo istio\.io\/dataplane-mode=ambient$/],
    ['namespace labelled otherwise', (f) => (f.namespaceLabels = { 'istio.io/dataplane-mode': 'sidecar' }), ['namespace-not-enrolled'], /istio\.io\/dataplane-mode=sidecar/, /--overwrite$/],
    ['pod opted out', (f) => (f.pod.labels['istio.io/dataplane-mode'] = 'none'), ['pod-opted-out'], /opted out .*istio\.io\/dataplane-mode=none \(namespace demo is enrolled\)/, /^kubectl label pod -n demo backend-1 istio\.io\/dataplane-mode-/],
    ['host network', (f) => (f.pod.hostNetwork = true), ['host-network'], /uses the host network/, /hostNetwork/],
    ['no agent on the node', (f) => delete f.agent, ['no-agent'], /no amesh node agent runs on node w1/, /daemonset amesh-node/],
    ['capture pending', (f) => (f.pod.annotations['ambient.istio.io/redirection'] = 'pending'), ['capture-pending'], /not captured yet: ambient\.istio\.io\/redirection=pending/, /wait a few seconds/],
    ['pod pending', (f) => (f.pod.phase = 'Pending'), ['pod-not-running'], /is Pending: it is captured once it runs/, /kubectl describe pod/],
    ['pod not ready', (f) => (f.pod.ready = { status: false, message: 'containers with unready status: [backend]' }), ['pod-not-ready'], /not Ready \(containers with unready status/, /probes/],
    [
      'CA unreachable: certificate Unavailable',
      (f) => (f.agent!.dump!.certificate = { state: 'Unavailable', valid: false, notAfter: '', error: 'AMESH_CA_UNAVAILABLE: connect ECONNREFUSED 10.96.0.2:15012' }),
      ['ca-unreachable'],
      /no certificate for spiffe:\/\/cluster\.local\/ns\/demo\/sa\/backend-sa \(Unavailable\): the node agent cannot reach the mesh CA at amesh-controller\.amesh-system\.svc:15012: AMESH_CA_UNAVAILABLE/,
      /the CA runs in the controller/,
    ],
    ['CA unreachable: no certificate at all, CA status problem', (f) => { delete f.agent!.dump!.certificate; f.agent!.dump!.caProblem = 'cannot reach the CA: ETIMEDOUT'; }, ['ca-unreachable'], /holds no certificate .*mesh CA .* is unreachable \(cannot reach the CA: ETIMEDOUT\)/, /controller/],
    ['certificate expired (not a CA outage)', (f) => (f.agent!.dump!.certificate = { state: 'Available', valid: false, notAfter: '2026-12-01T00:00:00Z', error: '' }), ['no-certificate'], /is Available \(not after 2026-12-01/, /ztunnel-config certificates --node w1/],
    [
      'controller down: new pod unknown to the agent',
      (f) => {
        f.controller = { running: 0, total: 0 };
        f.agent!.dump!.workloadKnown = false;
        delete f.agent!.dump!.certificate;
        f.agent!.dump!.xds = { connected: false, lastError: 'connect ECONNREFUSED 10.96.0.2:15012', address: 'amesh-controller.amesh-system.svc:15012' };
        delete f.pod.annotations['ambient.istio.io/redirection'];
      },
      ['controller-down', 'capture-pending', 'agent-disconnected', 'workload-unknown'],
      /mesh CA and the xDS server are down/,
      /scale deployment amesh-controller --replicas=1/,
    ],
    ['denied by a named policy', (f) => (f.agent!.denials = [denial(), denial({ time: '2026-12-02T15:58:00.000Z' })]), ['denied-by-policy'], /2 connections to this pod from spiffe:\/\/cluster\.local\/ns\/demo\/sa\/default were denied by AuthorizationPolicy demo\/deny-client \(rule 0: from principals/, /kubectl get authorizationpolicy -n demo deny-client -o yaml/],
    ['refused without a policy', (f) => (f.agent!.denials = [denial({ policy: '(none)', rule: '', reason: 'no endpoints', direction: 'outbound', src: '10.244.1.3:5000', dst: '10.96.0.9:80', destinationWorkload: undefined })]), ['connection-refused'], /from this pod to 10\.96\.0\.9:80 was refused: no endpoints/, /ztunnel-config/],
    [
      'waypoint for services only, pod addressed (pod label)',
      (f) => {
        f.pod.labels['istio.io/use-waypoint'] = 'waypoint';
        f.waypoints = [{ namespace: 'demo', name: 'waypoint', for: 'service', programmed: true, programmedMessage: '' }];
        f.pod.annotations['amesh.io/waypoint'] = 'none: waypoint demo/waypoint handles services only (istio.io/waypoint-for=service); workload traffic is not sent to it';
      },
      ['waypoint-service-only'],
      /waypoint demo\/waypoint \(from the pod's istio\.io\/use-waypoint label\) handles Service-addressed traffic only \(istio\.io\/waypoint-for=service\): connections to this pod's own address 10\.244\.1\.3 bypass it/,
      /kubectl label gateway -n demo waypoint istio\.io\/waypoint-for=all --overwrite +\(or address the pod through its Service backend\)/,
    ],
    ['waypoint missing', (f) => (f.namespaceLabels['istio.io/use-waypoint'] = 'wp'), ['waypoint-missing'], /namespace demo's istio\.io\/use-waypoint label names waypoint demo\/wp, which does not exist/, /amesh waypoint apply -n demo --name wp/],
    [
      'waypoint not programmed',
      (f) => {
        f.namespaceLabels['istio.io/use-waypoint'] = 'waypoint';
        f.waypoints = [{ namespace: 'demo', name: 'waypoint', for: 'all', programmed: false, programmedMessage: 'no pods ready' }];
      },
      ['waypoint-not-programmed'],
      /not Programmed: no pods ready/,
      /amesh waypoint status/,
    ],
  ])('%s', (_name, mutate, expected, what, fix) => {
    const f = facts(mutate);
    expect(codes(f)).toEqual(expected);
    const first = finding(f, expected[0]!)!;
    expect(first.what).toMatch(what);
    const withFix = diagnose(f).findings.find((x) => fix.test(x.fix));
    expect(withFix, `a fix matching ${fix}`).toBeDefined();
    expect(diagnose(f).healthy).toBe(false);
  });

  it('a denial by a policy deleted since is history (info), not a problem', () => {
    const f = facts((x) => {
      x.agent!.denials = [denial()];
      x.existingAuthorizationPolicies = ['demo/other'];
    });
    expect(diagnose(f).healthy).toBe(true);
    expect(finding(f, 'denied-by-deleted-policy')?.what).toMatch(/denied by AuthorizationPolicy demo\/deny-client, which no longer exists/);
    f.existingAuthorizationPolicies = ['demo/deny-client'];
    expect(codes(f)).toEqual(['denied-by-policy']);
  });

  it('a namespace-wide service-only waypoint is information, not a problem', () => {
    const f = facts((x) => {
      x.namespaceLabels['istio.io/use-waypoint'] = 'waypoint';
      x.waypoints = [{ namespace: 'demo', name: 'waypoint', for: 'service', programmed: true, programmedMessage: '' }];
    });
    expect(diagnose(f).healthy).toBe(true);
    expect(finding(f, 'waypoint-service-only')?.severity).toBe('info');
  });

  it('an unenrolled pod reports nothing about capture, certificates or denials', () => {
    const f = facts((x) => {
      x.namespaceLabels = {};
      delete x.agent;
      x.controller = { running: 0, total: 0 };
    });
    expect(codes(f)).toEqual(['namespace-not-enrolled']);
  });

  it('context: policies that apply are listed', () => {
    const f = facts((x) => {
      x.peerAuthentications = [{ namespace: 'demo', name: 'strict', mode: 'STRICT' }];
      x.authorizationPolicies = [{ namespace: 'amesh-system', name: 'mesh-allow', action: 'ALLOW', scope: 'mesh-wide' }];
    });
    const text = formatDiagnosis(diagnose(f));
    expect(text).toMatch(/^demo\/backend-1: healthy\n/);
    expect(text).toContain('INFO  PeerAuthentication demo/strict applies: mTLS mode STRICT');
    expect(text).toContain('INFO  AuthorizationPolicy amesh-system/mesh-allow applies (ALLOW, mesh-wide)');
  });

  it('formats one line per finding with the fix below', () => {
    const text = formatDiagnosis(diagnose(facts((x) => (x.namespaceLabels = {}))));
    expect(text.split('\n').slice(0, 3)).toEqual([
      'demo/backend-1: 1 problem(s)',
      'ERROR namespace demo is not enrolled in the mesh (no istio.io/dataplane-mode label), so pod backend-1 sends and receives plain, unauthenticated traffic',
      '      fix: kubectl label namespace demo istio.io/dataplane-mode=ambient',
    ]);
  });
});

describe('denials', () => {
  it('keeps records to or from the pod within the window', () => {
    const records = [
      denial(),
      denial({ destinationWorkload: undefined, dst: '10.244.1.30:8080' }), // another pod
      denial({ destinationWorkload: undefined, direction: 'outbound', src: '10.244.1.3:40000', dst: '10.96.0.4:80' }),
      denial({ time: '2026-12-02T15:00:00.000Z' }), // too old
      { junk: true },
    ];
    const kept = relevantDenials(records, { ip: '10.244.1.3', uid: 'u-backend' }, 15 * 60_000, NOW);
    expect(kept.map((d) => d.dst)).toEqual(['10.244.1.3:8080', '10.96.0.4:80']);
  });
  it('matches IPv6 addresses in brackets', () => {
    expect(relevantDenials([denial({ destinationWorkload: undefined, dst: '[fd00::3]:8080' })], { ip: 'fd00::3', uid: '' }, 60_000, NOW)).toHaveLength(1);
  });
  it('groups by policy and rule, newest first, with distinct sources', () => {
    const g = groupDenials([denial(), denial({ sourceIdentity: null, src: '10.0.0.9:1' }), denial({ policy: 'demo/other', time: '2026-12-02T15:59:30.000Z' })]);
    expect(g.map((x) => [x.policy, x.count, x.sources])).toEqual([
      ['demo/other', 1, ['spiffe://cluster.local/ns/demo/sa/default']],
      ['demo/deny-client', 2, ['spiffe://cluster.local/ns/demo/sa/default', '10.0.0.9 (plaintext)']],
    ]);
  });
});
