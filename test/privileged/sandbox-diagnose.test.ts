/**
 * Issue #9, the inspect commands against a private sandbox with the real CLI (compiled dist/):
 * `amesh diagnose` pinpoints, with its fix and exit status 1, each problem an operator meets —
 * namespace not enrolled, pod opted out, host-network pod, traffic denied by a named
 * AuthorizationPolicy (from the agent's /debug/denials), a service-only waypoint while the pod is
 * addressed directly, and the CA unreachable (the controller scaled to 0, then a new pod) — and
 * says "in the mesh" with exit 0 for a healthy pod. `ztunnel-config` shows the agents' workloads
 * and certificates; `proxy-status` the controller's /debug/syncz (H4's endpoint).
 * Every wait is bounded; the sandbox is removed in afterAll.
 */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDown, sandboxUp } from '../../src/sandbox/lifecycle.js';
import { eventually } from '../helpers/eventually.js';
import { requireRoot } from '../helpers/privileged.js';
import { sandboxCli } from '../helpers/sandbox-cli.js';

const AMESH = join(import.meta.dirname, '..', '..', 'bin', 'amesh.js');

const guard = requireRoot('sandbox diagnose', { tools: ['ip', 'nsenter', 'nft', 'kubectl', 'curl', 'unshare'] });

const echo = (name: string, namespace: string, o: { sa?: string; labels?: Record<string, string>; hostNetwork?: boolean; port?: number } = {}): string => `
apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  replicas: 1
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata:
      labels: ${JSON.stringify({ app: name, ...(o.labels ?? {}) })}
    spec:
      ${o.sa ? `serviceAccountName: ${o.sa}` : ''}
      ${o.hostNetwork ? 'hostNetwork: true' : ''}
      containers:
        - name: echo
          image: hashicorp/http-echo:1.0
          args: ["-text=${name}", "-listen=:${o.port ?? 8080}"]
`;

const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata: { name: dx, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Namespace
metadata: { name: plain }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: client-sa, namespace: dx }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: late-sa, namespace: dx }
---
${echo('server', 'dx')}
---
apiVersion: v1
kind: Service
metadata: { name: server, namespace: dx }
spec:
  selector: { app: server }
  ports: [{ port: 80, targetPort: 8080 }]
---
${echo('optout', 'dx', { labels: { 'istio.io/dataplane-mode': 'none' } })}
---
${echo('hostnet', 'dx', { hostNetwork: true, port: 18080 })}
---
${echo('lonely', 'plain')}
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: client, namespace: dx }
spec:
  replicas: 1
  selector: { matchLabels: { app: client } }
  template:
    metadata: { labels: { app: client } }
    spec:
      serviceAccountName: client-sa
      containers:
        - name: curl
          image: curlimages/curl:8.10.1
          command: ["sleep", "infinity"]
`;

const DENY_CLIENT = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-client, namespace: dx }
spec:
  selector: { matchLabels: { app: server } }
  action: DENY
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/dx/sa/client-sa"] } }]
`;

// Skipped only when not root AND AMESH_ALLOW_UNPRIVILEGED_SKIP=1 (the reason is printed); otherwise
// requireRoot fails the file (test/helpers/privileged.ts), so CI as root always runs it.
describe.skipIf(!guard.run)('amesh diagnose / ztunnel-config / proxy-status (privileged sandbox)', () => {
  const name = `dg${Math.random().toString(16).slice(2, 5)}`;
  let dir = '';
  const { kubectl, kubectlOk, apply, amesh: ameshSync, env } = sandboxCli(() => dir, { ameshTimeoutMs: 60_000 });
  /**
   * The CLI without blocking the test worker (a loaded machine takes seconds per CLI start; spawnSync
   * in a polling loop starves vitest's worker RPC).
   */
  const amesh = (...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, [AMESH, ...args], { env: env(), timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err ? ((err as NodeJS.ErrnoException & { code?: unknown }).code ?? 1) : 0;
        resolve({ status: typeof code === 'number' ? code : 1, stdout, stderr });
      });
    });
  const exec = (ref: string, ...cmd: string[]) => amesh('sandbox', 'exec', '--dir', dir, ref, '--', ...cmd);
  const diagnose = async (ref: string): Promise<{ code: number | null; out: string }> => {
    const r = await amesh('diagnose', '--dir', dir, ref);
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  };
  const podOf = (namespace: string, app: string): string => kubectlOk('get', 'pods', '-n', namespace, '-l', `app=${app}`, '-o', 'jsonpath={.items[0].metadata.name}').trim();
  const waitRunning = async (namespace: string, apps: readonly string[], timeoutMs = 90_000): Promise<void> => {
    await eventually(
      () => {
        const r = kubectlOk('get', 'pods', '-n', namespace, '-o', 'jsonpath={range .items[*]}{.metadata.labels.app}={.status.phase} {end}');
        for (const app of apps) expect(r).toContain(`${app}=Running`);
      },
      { timeoutMs, intervalMs: 1000, description: `${apps.join(', ')} Running in ${namespace}` },
    );
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-diagnose-test-'));
    await sandboxUp({ dir, name, nodes: 1 });
    apply(MANIFEST);
    await waitRunning('dx', ['server', 'optout', 'hostnet', 'client']);
    await waitRunning('plain', ['lonely']);
  }, 240_000);

  afterAll(async () => {
    if (dir) await sandboxDown({ dir });
  }, 120_000);

  it('a healthy pod: in the mesh, exit 0; ztunnel-config shows it with HBONE and its certificate', async () => {
    let last = { code: null as number | null, out: '' };
    await eventually(
      async () => {
        last = await diagnose('dx/server');
        expect(last.code, last.out).toBe(0);
      },
      { timeoutMs: 60_000, intervalMs: 2000, description: 'dx/server diagnosed healthy' },
    );
    expect(last.out).toMatch(/is in the mesh: captured by the node agent on \S+, HBONE, certificate for spiffe:\/\/cluster\.local\/ns\/dx\/sa\/default valid until/);
    const workloads = await amesh('ztunnel-config', 'workloads', '--dir', dir, '-n', 'dx');
    expect(workloads.status, workloads.stderr).toBe(0);
    expect(workloads.stdout.split('\n')[0]).toMatch(/^NAMESPACE\s+POD NAME\s+ADDRESS\s+NODE\s+WAYPOINT\s+PROTOCOL$/);
    expect(workloads.stdout).toMatch(new RegExp(`dx\\s+${podOf('dx', 'server')}\\s+10\\.\\S+\\s+\\S+\\s+None\\s+HBONE`));
    const certificates = await amesh('ztunnel-config', 'certificates', '--dir', dir, '-o', 'json');
    expect(certificates.status, certificates.stderr).toBe(0);
    expect(JSON.stringify(JSON.parse(certificates.stdout))).toContain('spiffe://cluster.local/ns/dx/sa/client-sa');
  });

  it('namespace not enrolled: names the label command', async () => {
    const r = await diagnose('plain/lonely');
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain('namespace plain is not enrolled in the mesh');
    expect(r.out).toContain('fix: kubectl label namespace plain istio.io/dataplane-mode=ambient');
  });

  it('pod opted out: names the label and how to remove it', async () => {
    const r = await diagnose('dx/optout');
    expect(r.code, r.out).toBe(1);
    expect(r.out).toMatch(/pod dx\/optout-\S+ is opted out of the mesh: it carries the label istio\.io\/dataplane-mode=none \(namespace dx is enrolled\)/);
    expect(r.out).toMatch(/fix: kubectl label pod -n dx optout-\S+ istio\.io\/dataplane-mode-/);
  });

  it('host-network pod: never captured', async () => {
    const r = await diagnose('dx/hostnet');
    expect(r.code, r.out).toBe(1);
    expect(r.out).toContain('uses the host network');
  });

  it('denied by a named policy: the agent’s recent denials name the policy, the rule and the source', async () => {
    apply(DENY_CLIENT);
    try {
      const client = `dx/${podOf('dx', 'client')}`;
      await eventually(
        async () => {
          const r = await exec(client, 'curl', '-s', '-S', '--max-time', '3', 'http://server.dx/');
          expect(r.status, `curl should fail once the policy applies: ${r.stdout}${r.stderr}`).not.toBe(0);
        },
        { timeoutMs: 60_000, intervalMs: 1000, description: 'client → server denied' },
      );
      let last = { code: null as number | null, out: '' };
      await eventually(
        async () => {
          last = await diagnose('dx/server');
          expect(last.out).toMatch(/denied by AuthorizationPolicy dx\/deny-client/);
        },
        { timeoutMs: 30_000, intervalMs: 2000, description: 'diagnose names deny-client' },
      );
      expect(last.code).toBe(1);
      expect(last.out).toContain('spiffe://cluster.local/ns/dx/sa/client-sa');
      expect(last.out).toContain('fix: kubectl get authorizationpolicy -n dx deny-client -o yaml');
    } finally {
      kubectl('delete', 'authorizationpolicy', '-n', 'dx', 'deny-client', '--ignore-not-found');
    }
  });

  it('waypoint for services only while the pod is addressed directly', async () => {
    const applied = await amesh('waypoint', 'apply', '-n', 'dx', '--kubeconfig', join(dir, 'kubeconfig'));
    expect(applied.status, applied.stderr).toBe(0);
    const server = podOf('dx', 'server');
    kubectlOk('label', 'pod', '-n', 'dx', server, 'istio.io/use-waypoint=waypoint', '--overwrite');
    try {
      // Pod-addressed traffic still flows (it bypasses the waypoint): the case the operator asks about.
      const ip = kubectlOk('get', 'pod', '-n', 'dx', server, '-o', 'jsonpath={.status.podIP}').trim();
      await eventually(
        async () => {
          const r = await exec(`dx/${podOf('dx', 'client')}`, 'curl', '-s', '-S', '--max-time', '3', `http://${ip}:8080/`);
          expect(r.stdout).toContain('server');
        },
        { timeoutMs: 30_000, intervalMs: 1000, description: 'client → server pod IP answers' },
      );
      const r = await diagnose(`dx/${server}`);
      expect(r.code, r.out).toBe(1);
      expect(r.out).toMatch(/waypoint dx\/waypoint \(from the pod's istio\.io\/use-waypoint label\) handles Service-addressed traffic only \(istio\.io\/waypoint-for=service\): connections to this pod's own address \S+ bypass it/);
      expect(r.out).toContain('fix: kubectl label gateway -n dx waypoint istio.io/waypoint-for=all --overwrite');
    } finally {
      kubectl('label', 'pod', '-n', 'dx', server, 'istio.io/use-waypoint-');
      ameshSync('waypoint', 'delete', '-n', 'dx', 'waypoint', '--kubeconfig', join(dir, 'kubeconfig'));
    }
  });

  // Needs the controller's /debug/syncz on :15014 (H4). Fails with "ECONNREFUSED …:15014" until it lands.
  it('proxy-status: the node agent is connected and SYNCED', async () => {
    let out = '';
    await eventually(
      async () => {
        const r = await amesh('proxy-status', '--dir', dir);
        out = `${r.stdout}${r.stderr}`;
        expect(r.status, out).toBe(0);
        expect(r.stdout.split('\n')[0]).toMatch(/^NAME\s+ROLE\s+NODE\s+.*ADDRESS.*CONNECTED$/);
        expect(r.stdout).toMatch(/amesh-system\/amesh-node-\S+\s+node-agent\s+\S+\s+(SYNCED\s+)+/);
        expect(r.stdout).not.toContain('NOT CONNECTED');
      },
      { timeoutMs: 30_000, intervalMs: 2000, description: 'proxy-status lists the agent SYNCED' },
    );
  });

  // Last: it stops the controller (mesh CA + xDS) and brings it back.
  it('CA unreachable: with the controller scaled to 0, a new pod gets no certificate and diagnose says why', async () => {
    kubectlOk('scale', 'deployment', '-n', 'amesh-system', 'amesh-controller', '--replicas=0');
    try {
      await eventually(
        () => expect(kubectlOk('get', 'pods', '-n', 'amesh-system', '-l', 'app=amesh-controller', '-o', 'name').trim()).toBe(''),
        { timeoutMs: 60_000, intervalMs: 1000, description: 'controller pods gone' },
      );
      apply(echo('late', 'dx', { sa: 'late-sa' }));
      await waitRunning('dx', ['late']);
      const r = await diagnose('dx/late');
      expect(r.code, r.out).toBe(1);
      expect(r.out).toMatch(/no amesh controller is running \(0\/0 pods\): the mesh CA and the xDS server are down/);
      expect(r.out).toContain('fix: kubectl -n amesh-system scale deployment amesh-controller --replicas=1');
      expect(r.out).toMatch(/does not know pod dx\/late-\S+ — the controller that would send it \(and sign its certificate\) is unreachable/);
    } finally {
      kubectl('scale', 'deployment', '-n', 'amesh-system', 'amesh-controller', '--replicas=1');
      kubectl('delete', 'deployment', '-n', 'dx', 'late', '--ignore-not-found', '--wait=false');
    }
    await eventually(
      async () => {
        const r = await diagnose('dx/server');
        expect(r.code, r.out).toBe(0);
      },
      { timeoutMs: 90_000, intervalMs: 2000, description: 'mesh healthy again after the controller returns' },
    );
  });
});
