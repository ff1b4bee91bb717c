/**
 * `amesh diagnose <ns>/<pod>`: from plain facts about one pod (gathered by src/cli/diagnose.ts
 * from the API server and the pod's node agent) to findings, each in plain words with the fix.
 * Pure and table-tested (test/unit/diagnose-rules.test.ts).
 *
 * Order is cause before effect, and a finding that explains everything stops the ones it
 * explains: a host-network pod, an unenrolled namespace or an opted-out pod is not in the mesh,
 * so nothing about its capture or certificate is reported; no agent on the node means nothing can
 * be read from one. Severities: `error` (the pod is not meshed, or traffic fails), `warning`
 * (meshed, but something the operator probably did not intend), `info` (context: what applies).
 * `healthy` is true when nothing is error or warning — the CLI's exit status.
 */
export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  severity: Severity;
  /** Stable name of the rule, for -o json and tests. */
  code: string;
  /** What is wrong (or what applies), in plain words. */
  what: string;
  /** What to do about it; '' for info findings that need nothing. */
  fix: string;
}

export interface DenialFact {
  time: string;
  direction: string;
  src: string;
  dst: string;
  sourceIdentity: string | null;
  destinationWorkload?: string;
  policy: string;
  rule: string;
  reason: string;
}

export interface DiagnoseFacts {
  pod: {
    namespace: string;
    name: string;
    uid: string;
    phase: string;
    /** The Ready condition: undefined when the pod has none yet. */
    ready?: { status: boolean; message: string };
    deleting: boolean;
    hostNetwork: boolean;
    node: string;
    ip: string;
    serviceAccount: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  };
  namespaceLabels: Record<string, string>;
  trustDomain: string;
  /** Services in the pod's namespace whose selector matches it, with the controller's WaypointBound condition. */
  services: Array<{ name: string; waypointBound?: { status: string; reason: string; message: string } }>;
  /** Waypoint Gateways (class istio-waypoint) in the namespaces that matter. */
  waypoints: Array<{ namespace: string; name: string; for: string; programmed: boolean | undefined; programmedMessage: string }>;
  /** PeerAuthentications / AuthorizationPolicies that apply to the pod (selector, namespace-wide or root). */
  peerAuthentications: Array<{ namespace: string; name: string; mode: string }>;
  authorizationPolicies: Array<{ namespace: string; name: string; action: string; scope: string }>;
  /** `namespace/name` of every AuthorizationPolicy that exists now (the pod's and the root namespace): a denial by one since deleted is history. */
  existingAuthorizationPolicies?: string[];
  /** Controller pods: running / total. */
  controller: { running: number; total: number };
  /** The node agent on the pod's node: absent when none runs there. */
  agent?: {
    pod: string;
    running: boolean;
    /** Why its /config_dump could not be read. */
    readError?: string;
    /** Present when /config_dump was read. */
    dump?: {
      workloadKnown: boolean;
      workloadProtocol: string;
      /** The pod's identity's certificate, as the agent holds it; absent: none. */
      certificate?: { state: string; valid: boolean; notAfter: string; error: string };
      caAddress: string;
      caProblem: string;
      xds?: { connected: boolean; lastError: string; address: string };
    };
    /** /debug/denials entries concerning the pod (to or from its address); undefined when not readable. */
    denials?: DenialFact[];
    denialsError?: string;
  };
}

export interface Diagnosis {
  pod: string;
  healthy: boolean;
  findings: Finding[];
}

const DATAPLANE_MODE = 'istio.io/dataplane-mode';
const USE_WAYPOINT = 'istio.io/use-waypoint';
const REDIRECTION = 'ambient.istio.io/redirection';
const WAYPOINT_ANNOTATION = 'amesh.io/waypoint';

export function identityOf(f: Pick<DiagnoseFacts, 'pod' | 'trustDomain'>): string {
  return `spiffe://${f.trustDomain}/ns/${f.pod.namespace}/sa/${f.pod.serviceAccount || 'default'}`;
}

const kubectlPod = (f: DiagnoseFacts): string => `-n ${f.pod.namespace} ${f.pod.name}`;

const hostOf = (address: string): string => {
  const m = /^\[(.*)\](?::\d+)?$/.exec(address);
  if (m) return m[1] ?? '';
  return address.split(':').length === 2 ? (address.split(':')[0] ?? '') : address;
};

/** The agent's denial records that concern the pod (to or from its address, or for its uid) and are not older than `sinceMs`. */
export function relevantDenials(records: readonly unknown[], pod: { ip: string; uid: string }, sinceMs: number, now: number): DenialFact[] {
  const out: DenialFact[] = [];
  for (const r of records) {
    const d = (r ?? {}) as Partial<DenialFact>;
    if (typeof d.src !== 'string' || typeof d.dst !== 'string') continue;
    const time = typeof d.time === 'string' ? d.time : '';
    const at = Date.parse(time);
    if (!Number.isNaN(at) && at < now - sinceMs) continue;
    const mine = (pod.uid !== '' && d.destinationWorkload === pod.uid) || (pod.ip !== '' && (hostOf(d.dst) === pod.ip || hostOf(d.src) === pod.ip));
    if (!mine) continue;
    out.push({
      time,
      direction: typeof d.direction === 'string' ? d.direction : hostOf(d.dst) === pod.ip ? 'inbound' : 'outbound',
      src: d.src,
      dst: d.dst,
      sourceIdentity: typeof d.sourceIdentity === 'string' ? d.sourceIdentity : null,
      ...(typeof d.destinationWorkload === 'string' ? { destinationWorkload: d.destinationWorkload } : {}),
      policy: typeof d.policy === 'string' ? d.policy : '',
      rule: typeof d.rule === 'string' ? d.rule : '',
      reason: typeof d.reason === 'string' ? d.reason : '',
    });
  }
  return out;
}

/** Groups denials by the deciding policy and rule, newest first. */
export function groupDenials(denials: readonly DenialFact[]): Array<{ policy: string; rule: string; count: number; last: DenialFact; sources: string[] }> {
  const groups = new Map<string, { policy: string; rule: string; count: number; last: DenialFact; sources: Set<string> }>();
  for (const d of denials) {
    const key = `${d.policy}\u0000${d.rule}`;
    const g = groups.get(key);
    const source = d.sourceIdentity ?? `${d.src.replace(/:\d+$/, '')} (plaintext)`;
    if (!g) groups.set(key, { policy: d.policy, rule: d.rule, count: 1, last: d, sources: new Set([source]) });
    else {
      g.count++;
      g.sources.add(source);
      if (d.time > g.last.time) g.last = d;
    }
  }
  return [...groups.values()].sort((a, b) => b.last.time.localeCompare(a.last.time)).map((g) => ({ ...g, sources: [...g.sources] }));
}

function enrolment(f: DiagnoseFacts): Finding[] | undefined {
  const ns = f.pod.namespace;
  if (f.pod.hostNetwork) {
    return [
      {
        severity: 'warning',
        code: 'host-network',
        what: `pod ${ns}/${f.pod.name} uses the host network: it shares the node's address, so the mesh never captures its traffic (Istio ambient excludes such pods too)`,
        fix: 'run it without hostNetwork: true to bring it into the mesh',
      },
    ];
  }
  const own = f.pod.labels[DATAPLANE_MODE];
  if (own === 'none') {
    return [
      {
        severity: 'error',
        code: 'pod-opted-out',
        what: `pod ${ns}/${f.pod.name} is opted out of the mesh: it carries the label ${DATAPLANE_MODE}=none${f.namespaceLabels[DATAPLANE_MODE] === 'ambient' ? ` (namespace ${ns} is enrolled)` : ''}`,
        fix: `kubectl label pod ${kubectlPod(f)} ${DATAPLANE_MODE}-   (and remove it from the Deployment's pod template, or new pods opt out again)`,
      },
    ];
  }
  if (own !== 'ambient' && f.namespaceLabels[DATAPLANE_MODE] !== 'ambient') {
    const current = f.namespaceLabels[DATAPLANE_MODE];
    return [
      {
        severity: 'error',
        code: 'namespace-not-enrolled',
        what: `namespace ${ns} is not enrolled in the mesh (${current === undefined ? `no ${DATAPLANE_MODE} label` : `${DATAPLANE_MODE}=${current}`}), so pod ${f.pod.name} sends and receives plain, unauthenticated traffic`,
        fix: `kubectl label namespace ${ns} ${DATAPLANE_MODE}=ambient${current === undefined ? '' : ' --overwrite'}`,
      },
    ];
  }
  return undefined;
}

function lifecycle(f: DiagnoseFacts): Finding[] {
  if (f.pod.deleting) return [{ severity: 'warning', code: 'pod-deleting', what: `pod ${f.pod.namespace}/${f.pod.name} is being deleted`, fix: 'diagnose its replacement instead' }];
  if (f.pod.phase !== 'Running') {
    return [
      {
        severity: 'warning',
        code: 'pod-not-running',
        what: `pod ${f.pod.namespace}/${f.pod.name} is ${f.pod.phase || 'not running'}: it is captured once it runs`,
        fix: `kubectl describe pod ${kubectlPod(f)}`,
      },
    ];
  }
  if (f.pod.ready && !f.pod.ready.status) {
    return [
      {
        severity: 'warning',
        code: 'pod-not-ready',
        what: `pod ${f.pod.namespace}/${f.pod.name} runs but is not Ready${f.pod.ready.message ? ` (${f.pod.ready.message})` : ''}: its Services send it no traffic`,
        fix: `kubectl describe pod ${kubectlPod(f)}   (if it turned unready when its namespace was enrolled, the kubelet's probes may be caught by the capture: read the node agent's log)`,
      },
    ];
  }
  return [];
}

function controllerFindings(f: DiagnoseFacts): Finding[] {
  if (f.controller.running > 0) return [];
  return [
    {
      severity: 'error',
      code: 'controller-down',
      what: `no amesh controller is running (${f.controller.running}/${f.controller.total} pods): the mesh CA and the xDS server are down, so new pods get no certificate and node agents learn of no change`,
      fix:
        f.controller.total === 0
          ? 'kubectl -n amesh-system scale deployment amesh-controller --replicas=1   (then: kubectl -n amesh-system get pods -l app=amesh-controller)'
          : 'kubectl -n amesh-system describe pods -l app=amesh-controller; kubectl -n amesh-system logs deploy/amesh-controller',
    },
  ];
}

function agentFindings(f: DiagnoseFacts): Finding[] {
  const node = f.pod.node || '(not scheduled)';
  const agent = f.agent;
  if (!agent) {
    return [
      {
        severity: 'error',
        code: 'no-agent',
        what: `no amesh node agent runs on node ${node}: nothing captures this pod's traffic or holds its certificate`,
        fix: 'kubectl -n amesh-system get daemonset amesh-node; kubectl -n amesh-system get pods -l app=amesh-node -o wide   (taints or a nodeSelector may keep it off this node)',
      },
    ];
  }
  if (!agent.running) {
    return [{ severity: 'error', code: 'agent-not-running', what: `the node agent ${agent.pod} on node ${node} is not running`, fix: `kubectl describe pod -n ${agent.pod.replace('/', ' ')}` }];
  }
  const out: Finding[] = [];
  const redirection = f.pod.annotations[REDIRECTION];
  if (redirection !== 'enabled') {
    out.push({
      severity: 'warning',
      code: 'capture-pending',
      what: `pod ${f.pod.namespace}/${f.pod.name} is enrolled but not captured yet: ${REDIRECTION}=${redirection ?? '(not set)'} — the node agent on ${node} has not confirmed it redirects this pod`,
      fix: `wait a few seconds; if it stays: amesh proxy-status, and the agent's log: kubectl -n amesh-system logs ${agent.pod.split('/')[1] ?? ''}`,
    });
  }
  const dump = agent.dump;
  if (!dump) {
    out.push({
      severity: 'warning',
      code: 'agent-unreadable',
      what: `could not read the node agent ${agent.pod}'s state: ${agent.readError ?? 'unknown error'}`,
      fix: `kubectl -n amesh-system logs ${agent.pod.split('/')[1] ?? ''}`,
    });
    return out;
  }
  const identity = identityOf(f);
  const xdsDown = dump.xds && !dump.xds.connected;
  if (xdsDown) {
    out.push({
      severity: 'error',
      code: 'agent-disconnected',
      what: `the node agent on ${node} has no connection to the controller at ${dump.xds?.address || 'its xDS address'}${dump.xds?.lastError ? `: ${dump.xds.lastError}` : ''}; it serves the last state it received`,
      fix: 'kubectl -n amesh-system get pods -l app=amesh-controller; amesh proxy-status',
    });
  }
  if (!dump.workloadKnown) {
    out.push({
      severity: 'error',
      code: 'workload-unknown',
      what: `the node agent on ${node} does not know pod ${f.pod.namespace}/${f.pod.name}${xdsDown || f.controller.running === 0 ? ' — the controller that would send it (and sign its certificate) is unreachable' : ': the controller has not sent it yet'}`,
      fix: xdsDown || f.controller.running === 0 ? 'bring the controller back (see above); the agent reconnects by itself' : 'amesh proxy-status (is the agent SYNCED?); kubectl -n amesh-system logs deploy/amesh-controller',
    });
  }
  const cert = dump.certificate;
  const caProblem = /AMESH_CA_|CA |certificate authority|15012|ECONNREFUSED|ETIMEDOUT|ENOTFOUND|UNAVAILABLE|unreachable/i;
  if (cert && !cert.valid) {
    const reason = cert.error || dump.caProblem;
    const caDown = caProblem.test(reason) || f.controller.running === 0;
    out.push({
      severity: 'error',
      code: caDown ? 'ca-unreachable' : 'no-certificate',
      what: caDown
        ? `no certificate for ${identity} (${cert.state || 'missing'}): the node agent cannot reach the mesh CA at ${dump.caAddress || 'its CA address'}${reason ? `: ${reason}` : ''} — HBONE to and from this pod fails until it gets one`
        : `the certificate for ${identity} is ${cert.state || 'not available'}${cert.notAfter && !cert.valid ? ` (not after ${cert.notAfter})` : ''}${reason ? `: ${reason}` : ''}`,
      fix: caDown
        ? 'the CA runs in the controller: kubectl -n amesh-system get pods -l app=amesh-controller (scale it up / read its log); the agent retries by itself'
        : `amesh ztunnel-config certificates --node ${node}; kubectl -n amesh-system logs ${agent.pod.split('/')[1] ?? ''}`,
    });
  } else if (!cert && dump.workloadKnown && dump.workloadProtocol === 'HBONE') {
    const caDown = caProblem.test(dump.caProblem) || f.controller.running === 0;
    out.push({
      severity: 'error',
      code: caDown ? 'ca-unreachable' : 'no-certificate',
      what: `the node agent on ${node} holds no certificate for ${identity}${caDown ? `: the mesh CA at ${dump.caAddress || 'its CA address'} is unreachable${dump.caProblem ? ` (${dump.caProblem})` : ''}` : ''}`,
      fix: caDown ? 'the CA runs in the controller: kubectl -n amesh-system get pods -l app=amesh-controller' : `amesh ztunnel-config certificates --node ${node}`,
    });
  }
  return out;
}

function denialFindings(f: DiagnoseFacts): Finding[] {
  const agent = f.agent;
  if (!agent?.dump) return [];
  if (agent.denials === undefined) {
    return agent.denialsError ? [{ severity: 'info', code: 'denials-unreadable', what: `recent denials not available from the node agent: ${agent.denialsError}`, fix: '' }] : [];
  }
  return groupDenials(agent.denials).map((g) => {
    const inbound = g.last.direction === 'inbound';
    const named = g.policy && g.policy !== '(none)';
    const [policyNs, policyName] = named && g.policy.includes('/') ? g.policy.split('/') : [f.pod.namespace, g.policy];
    const from = g.sources.slice(0, 3).join(', ') + (g.sources.length > 3 ? ` and ${g.sources.length - 3} more` : '');
    const deleted = named && f.existingAuthorizationPolicies !== undefined && g.policy.includes('/') && !f.existingAuthorizationPolicies.includes(g.policy);
    if (deleted) {
      return {
        severity: 'info' as const,
        code: 'denied-by-deleted-policy',
        what: `${g.count} connection${g.count === 1 ? '' : 's'} ${inbound ? `to this pod from ${from}` : `from this pod to ${g.last.dst}`} ${g.count === 1 ? 'was' : 'were'} denied by AuthorizationPolicy ${g.policy}, which no longer exists; last at ${g.last.time}`,
        fix: '',
      };
    }
    return {
      severity: 'error' as const,
      code: named ? 'denied-by-policy' : 'connection-refused',
      what: named
        ? `${g.count} connection${g.count === 1 ? '' : 's'} ${inbound ? `to this pod from ${from}` : `from this pod to ${g.last.dst}`} ${g.count === 1 ? 'was' : 'were'} denied by AuthorizationPolicy ${g.policy}${g.rule ? ` (${g.rule})` : ''}; last at ${g.last.time}: ${g.last.reason}`
        : `${g.count} connection${g.count === 1 ? '' : 's'} ${inbound ? `to this pod from ${from}` : `from this pod to ${g.last.dst}`} ${g.count === 1 ? 'was' : 'were'} refused: ${g.last.reason}${g.rule ? ` (${g.rule})` : ''}; last at ${g.last.time}`,
      fix: named ? `kubectl get authorizationpolicy -n ${policyNs} ${policyName} -o yaml — allow the source in an ALLOW rule, or narrow the DENY rule that matches it` : 'amesh ztunnel-config workloads / services (is the destination known and does it have endpoints?)',
    };
  });
}

function waypointFindings(f: DiagnoseFacts): Finding[] {
  const out: Finding[] = [];
  const podLabel = f.pod.labels[USE_WAYPOINT];
  const nsLabel = f.namespaceLabels[USE_WAYPOINT];
  const annotation = f.pod.annotations[WAYPOINT_ANNOTATION];
  const wanted = podLabel ?? nsLabel;
  if (wanted && wanted !== 'none') {
    const wpNs = (podLabel ? f.pod.labels['istio.io/use-waypoint-namespace'] : f.namespaceLabels['istio.io/use-waypoint-namespace']) || f.pod.namespace;
    const waypoint = f.waypoints.find((w) => w.namespace === wpNs && w.name === wanted);
    const via = podLabel ? `the pod's ${USE_WAYPOINT} label` : `namespace ${f.pod.namespace}'s ${USE_WAYPOINT} label`;
    if (!waypoint) {
      out.push({
        severity: 'error',
        code: 'waypoint-missing',
        what: `${via} names waypoint ${wpNs}/${wanted}, which does not exist: traffic meant for it is not policed at L7`,
        fix: `amesh waypoint apply -n ${wpNs} --name ${wanted}   (or fix the label)`,
      });
    } else {
      if (waypoint.for === 'service' || waypoint.for === 'none') {
        out.push({
          severity: podLabel ? 'warning' : 'info',
          code: 'waypoint-service-only',
          what: `waypoint ${wpNs}/${wanted} (from ${via}) handles ${waypoint.for === 'none' ? 'no traffic' : 'Service-addressed traffic only'} (istio.io/waypoint-for=${waypoint.for}): connections to this pod's own address ${f.pod.ip || ''} bypass it${annotation ? ` — controller: ${annotation}` : ''}`.replace('  ', ' '),
          fix: `kubectl label gateway -n ${wpNs} ${wanted} istio.io/waypoint-for=all --overwrite   (or address the pod through its Service${f.services.length ? ` ${f.services.map((s) => s.name).join(', ')}` : ''})`,
        });
      }
      if (waypoint.programmed === false) {
        out.push({
          severity: 'warning',
          code: 'waypoint-not-programmed',
          what: `waypoint ${wpNs}/${wanted} is not Programmed${waypoint.programmedMessage ? `: ${waypoint.programmedMessage}` : ''}`,
          fix: `amesh waypoint status -n ${wpNs} ${wanted}`,
        });
      }
    }
  } else if (annotation?.startsWith('none:') && /only/.test(annotation)) {
    // A per-service-account waypoint the controller found but that does not take workload traffic.
    out.push({ severity: 'info', code: 'waypoint-service-only', what: `controller: ${annotation}`, fix: 'kubectl label gateway <waypoint> istio.io/waypoint-for=all --overwrite' });
  }
  for (const s of f.services) {
    const c = s.waypointBound;
    if (c && c.status === 'False' && c.reason !== 'NotBound') {
      out.push({ severity: 'warning', code: 'service-waypoint-unbound', what: `Service ${f.pod.namespace}/${s.name}: no waypoint bound (${c.reason}): ${c.message}`, fix: `amesh waypoint status -n ${f.pod.namespace}` });
    }
  }
  return out;
}

function context(f: DiagnoseFacts): Finding[] {
  const out: Finding[] = [];
  if (f.services.length) out.push({ severity: 'info', code: 'services', what: `selected by Service${f.services.length === 1 ? '' : 's'} ${f.services.map((s) => s.name).join(', ')}`, fix: '' });
  for (const p of f.peerAuthentications) out.push({ severity: 'info', code: 'peer-authentication', what: `PeerAuthentication ${p.namespace}/${p.name} applies: mTLS mode ${p.mode || 'UNSET'}`, fix: '' });
  for (const p of f.authorizationPolicies) out.push({ severity: 'info', code: 'authorization-policy', what: `AuthorizationPolicy ${p.namespace}/${p.name} applies (${p.action || 'ALLOW'}, ${p.scope})`, fix: '' });
  return out;
}

export function diagnose(f: DiagnoseFacts): Diagnosis {
  const pod = `${f.pod.namespace}/${f.pod.name}`;
  const findings: Finding[] = [];
  const excluded = enrolment(f);
  if (excluded) findings.push(...excluded);
  else {
    const life = lifecycle(f);
    findings.push(...life);
    findings.push(...controllerFindings(f));
    if (!life.some((x) => x.code !== 'pod-not-ready')) {
      findings.push(...agentFindings(f));
      findings.push(...denialFindings(f));
    }
    findings.push(...waypointFindings(f));
  }
  findings.push(...context(f));
  const healthy = !findings.some((x) => x.severity !== 'info');
  if (healthy) {
    const cert = f.agent?.dump?.certificate;
    findings.unshift({
      severity: 'info',
      code: 'healthy',
      what: `pod ${pod} is in the mesh: captured by the node agent on ${f.pod.node}, ${f.agent?.dump?.workloadProtocol || 'HBONE'}${cert?.valid ? `, certificate for ${identityOf(f)} valid until ${cert.notAfter}` : ''}${f.agent?.denials ? '; no recent denials' : ''}`,
      fix: '',
    });
  }
  return { pod, healthy, findings };
}

const MARK: Record<Severity, string> = { error: 'ERROR', warning: 'WARN ', info: 'INFO ' };

/** One line per finding, its fix indented below. */
export function formatDiagnosis(d: Diagnosis): string {
  const lines = [`${d.pod}: ${d.healthy ? 'healthy' : `${d.findings.filter((x) => x.severity !== 'info').length} problem(s)`}`];
  for (const x of d.findings) {
    lines.push(`${MARK[x.severity]} ${x.what}`);
    if (x.fix) lines.push(`      fix: ${x.fix}`);
  }
  return `${lines.join('\n')}\n`;
}
