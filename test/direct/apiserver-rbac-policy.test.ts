/**
 * RBAC and PodDisruptionBudget through the API server's socket, as real clients use them:
 * kubectl (v1.32: discovery, client-side apply with its strategic-merge patches, server-side
 * apply, tables, `--watch`-free get) and @kubernetes/client-node's KubernetesObjectApi (what
 * `amesh install` applies with). Stored, not enforced.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KubeConfig, KubernetesObjectApi, type KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyObjects } from '../../src/install/apply.js';
import { startHarness, type Harness } from './apiserver-harness.js';

const KUBECTL = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((p) => existsSync(p));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

const MANIFEST = `apiVersion: v1
kind: Namespace
metadata:
  name: team
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: pod-reader
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: VERBS
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: pod-reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: pod-reader
subjects:
- kind: ServiceAccount
  name: app
  namespace: team
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: cm-writer
  namespace: team
rules:
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: cm-writer
  namespace: team
roleRef:
  kind: Role
  name: cm-writer
subjects:
- kind: User
  name: alice
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
  namespace: team
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app: web}
`;

const CREATED = [
  'namespace/team created',
  'clusterrole.rbac.authorization.k8s.io/pod-reader created',
  'clusterrolebinding.rbac.authorization.k8s.io/pod-reader created',
  'role.rbac.authorization.k8s.io/cm-writer created',
  'rolebinding.rbac.authorization.k8s.io/cm-writer created',
  'poddisruptionbudget.policy/web created',
];

describe.skipIf(!KUBECTL)(`RBAC and PodDisruptionBudget through kubectl and client-node${KUBECTL ? '' : ' (SKIPPED: kubectl is not installed; CI installs it)'}`, () => {
  let h: Harness;
  const kubectl = (args: string[], stdin?: string): Promise<Result> =>
    new Promise((resolve) => {
      const child = execFile(
        KUBECTL ?? 'kubectl',
        ['--kubeconfig', h.kubeconfig, '--cache-dir', join(h.dir, 'cache'), ...args],
        { timeout: 20_000, env: { PATH: process.env.PATH ?? '', HOME: h.dir } },
        (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
      if (stdin !== undefined) child.stdin?.end(stdin);
    });
  const manifest = async (verbs: string[]): Promise<string> => {
    const file = join(h.dir, `rbac-${verbs.join('-')}.yaml`);
    await writeFile(file, MANIFEST.replace('VERBS', JSON.stringify(verbs)));
    return file;
  };

  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('discovers the kinds with their scope', async () => {
    const cluster = await kubectl(['api-resources', '--namespaced=false', '--api-group=rbac.authorization.k8s.io', '-o', 'name']);
    expect(cluster.stderr).toBe('');
    expect(cluster.stdout.trim().split('\n')).toEqual(['clusterrolebindings.rbac.authorization.k8s.io', 'clusterroles.rbac.authorization.k8s.io']);
    const namespaced = await kubectl(['api-resources', '--namespaced=true', '--api-group=rbac.authorization.k8s.io', '-o', 'name']);
    expect(namespaced.stdout.trim().split('\n')).toEqual(['rolebindings.rbac.authorization.k8s.io', 'roles.rbac.authorization.k8s.io']);
    const policy = await kubectl(['api-resources', '--api-group=policy']);
    expect(policy.stdout).toMatch(/^poddisruptionbudgets\s+pdb\s+policy\/v1\s+true\s+PodDisruptionBudget$/m);
  });

  it('applies (client-side) without --validate=false, re-applies unchanged, then configures a changed rule', async () => {
    const first = await kubectl(['apply', '-f', await manifest(['get', 'list'])]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout.trim().split('\n')).toEqual(CREATED);
    const versions = (): Array<string | undefined> =>
      [
        h.store.get('rbac.authorization.k8s.io/v1', 'RoleBinding', 'team', 'cm-writer'),
        h.store.get('policy/v1', 'PodDisruptionBudget', 'team', 'web'),
      ].map((o) => o?.metadata.resourceVersion);
    const before = versions();
    const again = await kubectl(['apply', '-f', await manifest(['get', 'list'])]);
    expect(again.code).toBe(0);
    // As against kube-apiserver, kubectl's own patch computation reports two of them "configured"
    // although nothing changes: a PDB's selector has patch strategy "replace" (the patch always
    // carries it), and the User subject differs from the live one by the group the server
    // defaulted (subjects is an atomic list). The server sees no change: same resourceVersions.
    expect(again.stdout.trim().split('\n')).toEqual(
      CREATED.map((l) => (/^(rolebinding|poddisruptionbudget)\./.test(l) ? l.replace(/created$/, 'configured') : l.replace(/created$/, 'unchanged'))),
    );
    expect(versions()).toEqual(before);
    const changed = await kubectl(['apply', '-f', await manifest(['get', 'list', 'watch'])]);
    expect(changed.stderr).toBe('');
    expect(changed.stdout).toContain('clusterrole.rbac.authorization.k8s.io/pod-reader configured');
    expect(changed.stdout).toContain('clusterrolebinding.rbac.authorization.k8s.io/pod-reader unchanged');
    expect(h.store.get('rbac.authorization.k8s.io/v1', 'ClusterRole', undefined, 'pod-reader')?.rules).toEqual([{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] }]);
    // Defaults kube-apiserver fills in: the role's group and a User subject's group.
    const rb = h.store.get('rbac.authorization.k8s.io/v1', 'RoleBinding', 'team', 'cm-writer');
    expect(rb?.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'cm-writer' });
    expect(rb?.subjects).toEqual([{ kind: 'User', name: 'alice', apiGroup: 'rbac.authorization.k8s.io' }]);
  });

  it('prints tables like a real cluster', async () => {
    const crb = await kubectl(['get', 'clusterrolebinding', 'pod-reader', '-o', 'wide']);
    expect(crb.stderr).toBe('');
    const [header, row] = crb.stdout.trim().split('\n');
    expect(header?.split(/\s{2,}/)).toEqual(['NAME', 'ROLE', 'AGE', 'USERS', 'GROUPS', 'SERVICEACCOUNTS']);
    expect(row).toMatch(/^pod-reader\s+ClusterRole\/pod-reader\s+\d+s\s+team\/app$/);
    const pdb = await kubectl(['get', 'pdb', '-n', 'team']);
    expect(pdb.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^NAME\s+MIN AVAILABLE\s+MAX UNAVAILABLE\s+ALLOWED DISRUPTIONS\s+AGE$/), expect.stringMatching(/^web\s+N\/A\s+1\s+0\s+\d+s$/)]);
    const roles = await kubectl(['get', 'roles', '-n', 'team']);
    expect(roles.stdout).toMatch(/^cm-writer\s+\d{4}-\d\d-\d\dT/m);
  });

  it('refuses what kube-apiserver refuses: a changed roleRef, a budget with both bounds', async () => {
    const roleRef = await kubectl(['patch', 'rolebinding', 'cm-writer', '-n', 'team', '--type', 'merge', '-p', '{"roleRef":{"kind":"ClusterRole","name":"pod-reader"}}']);
    expect(roleRef.code).not.toBe(0);
    expect(roleRef.stderr).toContain('The RoleBinding "cm-writer" is invalid: roleRef: Invalid value');
    expect(roleRef.stderr).toContain('cannot change roleRef');
    const both = await kubectl(['patch', 'pdb', 'web', '-n', 'team', '--type', 'merge', '-p', '{"spec":{"minAvailable":1}}']);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toContain('minAvailable and maxUnavailable cannot be both set');
    const unknown = await kubectl(['apply', '-f', '-'], 'apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: typo\n  namespace: team\nrule: []\n');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('unknown field "rule"');
  });

  it('server-side applies with kubectl and with client-node (amesh install’s path), idempotently', async () => {
    const ssa = await kubectl(['apply', '--server-side', '-f', '-'], 'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: ssa\nrules:\n- apiGroups: [apps]\n  resources: [deployments]\n  verbs: [get]\n');
    expect(ssa.stderr).toBe('');
    expect(ssa.stdout.trim()).toBe('clusterrole.rbac.authorization.k8s.io/ssa serverside-applied');

    const kc = new KubeConfig();
    kc.loadFromFile(h.kubeconfig);
    const objects = parseAllDocuments(MANIFEST.replace('VERBS', '["get"]').replace(/name: (pod-reader|cm-writer|web)$/gm, 'name: $1-ssa'))
      .map((d) => d.toJSON() as KubernetesObject)
      .filter((o) => o.kind !== 'Namespace');
    const first = await applyObjects(kc, objects);
    expect(first.map((r) => `${r.object.kind}/${r.object.metadata?.name} ${r.outcome}`)).toEqual([
      'ClusterRole/pod-reader-ssa created',
      'ClusterRoleBinding/pod-reader-ssa created',
      'Role/cm-writer-ssa created',
      'RoleBinding/cm-writer-ssa created',
      'PodDisruptionBudget/web-ssa created',
    ]);
    const second = await applyObjects(kc, objects);
    expect(second.map((r) => r.outcome)).toEqual(['unchanged', 'unchanged', 'unchanged', 'unchanged', 'unchanged']);

    const api = KubernetesObjectApi.makeApiClient(kc);
    const list = await api.list('rbac.authorization.k8s.io/v1', 'RoleBinding', 'team');
    expect(list.items.map((o) => o.metadata?.name).sort()).toEqual(['cm-writer', 'cm-writer-ssa']);
    await api.delete({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'web-ssa', namespace: 'team' } });
    expect(h.store.get('policy/v1', 'PodDisruptionBudget', 'team', 'web-ssa')).toBeUndefined();
  });

  it('streams watch events over HTTP', async () => {
    const rv = h.store.currentResourceVersion();
    h.store.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'watched', namespace: 'team' }, rules: [] });
    h.store.delete('rbac.authorization.k8s.io/v1', 'Role', 'team', 'watched');
    const res = await h.request('GET', `/apis/rbac.authorization.k8s.io/v1/namespaces/team/roles?watch=true&resourceVersion=${rv}&timeoutSeconds=1`);
    expect(res.status).toBe(200);
    const events = res.body.trim().split('\n').map((l) => JSON.parse(l) as { type: string; object: KubernetesObject });
    expect(events.map((e) => `${e.type} ${e.object.metadata?.name}`)).toEqual(['ADDED watched', 'DELETED watched']);
  });
});
