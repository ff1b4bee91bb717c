/**
 * Real kubectl (v1.32) against the embedded API server: the "Done when" of issue #3 is that
 * plain `kubectl apply/get/label/patch/delete` work without flags like --validate=false.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  name: demo
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
  namespace: demo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: demo
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      serviceAccountName: web
      containers:
      - name: app
        image: hashicorp/http-echo
        args: ["-text=hello"]
        ports:
        - containerPort: 5678
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: demo
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 5678
`;

const CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd], listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
`;

describe.skipIf(!KUBECTL)(`kubectl against the API server${KUBECTL ? '' : ' (SKIPPED: kubectl is not installed; CI installs it)'}`, () => {
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
  const manifest = async (replicas: number): Promise<string> => {
    const file = join(h.dir, `manifest-${replicas}.yaml`);
    await writeFile(file, MANIFEST.replace('REPLICAS', String(replicas)));
    return file;
  };

  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('applies a multi-document manifest without --validate=false, then re-applies', async () => {
    const first = await kubectl(['apply', '-f', await manifest(2)]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout.trim().split('\n')).toEqual(['namespace/demo created', 'serviceaccount/web created', 'deployment.apps/web created', 'service/web created']);
    const again = await kubectl(['apply', '-f', await manifest(2)]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('deployment.apps/web unchanged');
    const changed = await kubectl(['apply', '-f', await manifest(3)]);
    expect(changed.stderr).toBe('');
    expect(changed.stdout).toContain('deployment.apps/web configured');
    const deployment = h.store.get('apps/v1', 'Deployment', 'demo', 'web');
    expect((deployment?.spec as { replicas: number }).replicas).toBe(3);
    expect(deployment?.metadata.generation).toBe(2);
  });

  it('prints tables like a real cluster', async () => {
    const pod = h.store.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-1', namespace: 'demo', labels: { app: 'web' } },
      spec: { nodeName: 'sandbox-node1', containers: [{ name: 'app', image: 'hashicorp/http-echo' }] },
    });
    h.store.update({ ...pod, status: { phase: 'Running', podIP: '10.244.1.5', containerStatuses: [{ name: 'app', ready: true, restartCount: 0, state: { running: {} } }] } }, { subresource: 'status' });
    const pods = await kubectl(['get', 'pods', '-A']);
    expect(pods.code).toBe(0);
    const [header, row] = pods.stdout.trim().split('\n');
    expect(header?.split(/\s+/)).toEqual(['NAMESPACE', 'NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE']);
    expect(row?.split(/\s+/).slice(0, 5)).toEqual(['demo', 'web-1', '1/1', 'Running', '0']);
    const wide = await kubectl(['get', 'pods', '-n', 'demo', '-o', 'wide']);
    expect(wide.stdout).toMatch(/10\.244\.1\.5\s+sandbox-node1/);
    const ns = await kubectl(['get', 'ns']);
    expect(ns.stdout).toMatch(/^demo\s+Active\s+\d+s$/m);
    const both = await kubectl(['get', 'deploy,svc', '-n', 'demo']);
    expect(both.stdout).toMatch(/deployment\.apps\/web\s+0\/3/);
    expect(both.stdout).toMatch(/service\/web\s+ClusterIP/);
    const yaml = await kubectl(['get', 'deploy', 'web', '-n', 'demo', '-o', 'yaml']);
    expect(yaml.stdout).toMatch(/^kind: Deployment$/m);
    expect(yaml.stdout).toMatch(/replicas: 3/);
  });

  it('labels a namespace', async () => {
    const res = await kubectl(['label', 'ns', 'demo', 'istio.io/dataplane-mode=ambient']);
    expect(res.stderr).toBe('');
    expect(res.stdout.trim()).toBe('namespace/demo labeled');
    expect(h.store.get('v1', 'Namespace', undefined, 'demo')?.metadata.labels?.['istio.io/dataplane-mode']).toBe('ambient');
  });

  it('patches with --type merge, json and strategic', async () => {
    const merge = await kubectl(['patch', 'svc', 'web', '-n', 'demo', '--type', 'merge', '-p', '{"metadata":{"labels":{"tier":"front"}}}']);
    expect(merge.stderr).toBe('');
    const json = await kubectl(['patch', 'deploy', 'web', '-n', 'demo', '--type', 'json', '-p', '[{"op":"replace","path":"/spec/replicas","value":1}]']);
    expect(json.stderr).toBe('');
    const strategic = await kubectl(['patch', 'deploy', 'web', '-n', 'demo', '-p', '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"hashicorp/http-echo:1.0"}]}}}}']);
    expect(strategic.stderr).toBe('');
    expect(strategic.stdout).toContain('deployment.apps/web patched');
    const deployment = h.store.get('apps/v1', 'Deployment', 'demo', 'web');
    const spec = deployment?.spec as { replicas: number; template: { spec: { containers: Array<{ image: string; args?: string[] }> } } };
    expect(spec.replicas).toBe(1);
    expect(spec.template.spec.containers).toHaveLength(1);
    expect(spec.template.spec.containers[0]).toMatchObject({ image: 'hashicorp/http-echo:1.0', args: ['-text=hello'] });
    expect(h.store.get('v1', 'Service', 'demo', 'web')?.metadata.labels).toEqual({ tier: 'front' });
  });

  it('scales a deployment through the scale subresource', async () => {
    const res = await kubectl(['scale', 'deploy', 'web', '-n', 'demo', '--replicas=4']);
    expect(res.stderr).toBe('');
    expect(res.stdout.trim()).toBe('deployment.apps/web scaled');
    expect((h.store.get('apps/v1', 'Deployment', 'demo', 'web')?.spec as { replicas: number }).replicas).toBe(4);
  });

  it('runs kubectl create generators, which send protobuf bodies', async () => {
    const commands = [
      ['create', 'namespace', 'gen'],
      ['create', 'deployment', 'app', '-n', 'gen', '--image=nginx', '--port=80', '--replicas=2'],
      ['create', 'configmap', 'cfg', '-n', 'gen', '--from-literal=a=b'],
      ['create', 'secret', 'generic', 'sec', '-n', 'gen', '--from-literal=p=q'],
      ['create', 'serviceaccount', 'robot', '-n', 'gen'],
      ['create', 'service', 'clusterip', 'svc', '-n', 'gen', '--tcp=80:8080'],
      ['expose', 'deployment', 'app', '-n', 'gen', '--port=80'],
    ];
    for (const args of commands) {
      const res = await kubectl(args);
      expect(res.stderr, args.join(' ')).toBe('');
    }
    const app = h.store.get('apps/v1', 'Deployment', 'gen', 'app');
    expect(app?.spec).toMatchObject({ replicas: 2, template: { spec: { containers: [{ name: 'nginx', image: 'nginx', ports: [{ containerPort: 80 }] }] } } });
    expect(h.store.get('v1', 'Secret', 'gen', 'sec')?.data).toEqual({ p: Buffer.from('q').toString('base64') });
    expect(h.store.get('v1', 'Service', 'gen', 'svc')?.spec).toMatchObject({ ports: [{ port: 80, targetPort: 8080 }] });
  });

  it('applies server-side', async () => {
    const res = await kubectl(['apply', '--server-side', '-f', '-'], 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: demo\ndata:\n  a: "1"\n');
    expect(res.stderr).toBe('');
    expect(res.stdout.trim()).toBe('configmap/ssa serverside-applied');
    const cm = h.store.get('v1', 'ConfigMap', 'demo', 'ssa');
    expect(cm?.data).toEqual({ a: '1' });
    expect(cm?.metadata.managedFields?.[0]).toMatchObject({ manager: 'kubectl', operation: 'Apply' });
  });

  it('reports an unknown kind and a malformed manifest the way kubectl does', async () => {
    const unknown = await kubectl(['apply', '-f', '-'], 'apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no matches for kind "Gadget" in version "example.com\/v1"/);
    const malformed = await kubectl(['apply', '-f', '-'], 'apiVersion: v1\nkind: ConfigMap\nmetadata: [oops\n');
    expect(malformed.code).not.toBe(0);
    expect(malformed.stderr).toMatch(/^error: /);
    const unknownResource = await kubectl(['get', 'gadgets']);
    expect(unknownResource.stderr).toContain('the server doesn\'t have a resource type "gadgets"');
  });

  it('rejects an unknown field with server-side Strict validation', async () => {
    const res = await kubectl(['apply', '-f', '-'], 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: strict\n  namespace: demo\ndata: {}\nbogus: 1\n');
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('unknown field "bogus"');
  });

  it('serves a CRD applied at run time: custom resources can be created and listed', async () => {
    const crd = await kubectl(['apply', '-f', '-'], CRD);
    expect(crd.stderr).toBe('');
    expect(crd.stdout.trim()).toBe('customresourcedefinition.apiextensions.k8s.io/widgets.example.com created');
    const widget = await kubectl(['apply', '-f', '-'], 'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: demo\nspec:\n  size: 3\n');
    expect(widget.stderr).toBe('');
    expect(widget.stdout.trim()).toBe('widget.example.com/w1 created');
    const list = await kubectl(['get', 'wd', '-n', 'demo']);
    expect(list.stdout).toMatch(/^w1\s+\d+s$/m);
  });

  it('deletes a manifest, namespace first, like a real cluster', async () => {
    const res = await kubectl(['delete', '-f', await manifest(3)]);
    expect(res.stderr).toBe('');
    expect(res.stdout).toContain('namespace "demo" deleted');
    expect(res.stdout).toContain('deployment.apps "web" deleted');
    const gone = await kubectl(['get', 'ns', 'demo']);
    expect(gone.stderr).toContain('namespaces "demo" not found');
  });
});
