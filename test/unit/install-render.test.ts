/**
 * src/install/render.ts: the file list comes from daemonset/kustomization.yaml, default values
 * render the files unchanged, `--set` changes exactly what it names, and the objects come out in
 * apply order. Plus the facts of the manifests issue #10 asks for (checked on the rendered
 * objects, so a regression in either the files or the renderer shows).
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { AmeshError } from '../../src/errors/amesh-error.js';
import { readManifests } from '../../src/install/apply.js';
import { DAEMONSET_DIR } from '../../src/install/paths.js';
import { applyValues, DEFAULT_VALUES, describeValues, installManifestFiles, isCrd, parseSetFlags, renderInstall, toYaml, VALUE_KEYS } from '../../src/install/render.js';
import { readControllerConfig } from '../../src/config/controller-config.js';
import { DEFAULT_GATEWAY_IMAGE } from '../../src/controller/gateway/ingress-render.js';
import { DEFAULT_WAYPOINT_IMAGE } from '../../src/controller/waypoint/render.js';
import { RESOURCES } from '../../src/controller/kube/informer.js';

interface Probe {
  httpGet?: { path?: string; port?: number | string };
}
interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  env?: Array<{ name: string; value?: string }>;
  ports?: unknown[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { privileged?: boolean; allowPrivilegeEscalation?: boolean; runAsNonRoot?: boolean; capabilities?: { drop?: string[]; add?: string[] } };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}
interface PodSpec {
  hostNetwork?: boolean;
  priorityClassName?: string;
  terminationGracePeriodSeconds?: number;
  tolerations?: Array<{ operator?: string }>;
  securityContext?: { runAsNonRoot?: boolean };
  containers: Container[];
  volumes?: Array<{ name: string; hostPath?: { path: string }; projected?: { sources: Array<{ serviceAccountToken?: { audience?: string } }> } }>;
}
interface Workload extends KubernetesObject {
  spec: {
    updateStrategy?: { type?: string; rollingUpdate?: { maxSurge?: number; maxUnavailable?: number } };
    template: { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec };
  };
}

const find = (objects: KubernetesObject[], kind: string, name: string): KubernetesObject => {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`${kind}/${name} is not rendered`);
  return o;
};
const agent = (objects: KubernetesObject[]): Workload => find(objects, 'DaemonSet', 'amesh-node') as Workload;
const controller = (objects: KubernetesObject[]): Workload => find(objects, 'Deployment', 'amesh-controller') as Workload;
const container = (w: Workload): Container => w.spec.template.spec.containers[0] as Container;
const env = (c: Container, name: string): string | undefined => c.env?.find((e) => e.name === name)?.value;
/** The container's literal env values, as the process would see them. */
const settingsOf = (c: Container): NodeJS.ProcessEnv => Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
const key = (o: KubernetesObject): string => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;

/** API groups of the types the controller watches that every cluster serves. */
const BUILT_IN_GROUPS = ['', 'apps', 'discovery.k8s.io'];

async function rawObjects(): Promise<KubernetesObject[]> {
  const out: KubernetesObject[] = [];
  for (const file of installManifestFiles()) out.push(...(await readManifests(file)));
  return out;
}

describe('installManifestFiles', () => {
  it('is daemonset/kustomization.yaml with directories followed, CRDs first', () => {
    const files = installManifestFiles().map((f) => f.slice(DAEMONSET_DIR.length + 1));
    expect(files).toEqual(['crds/gateway-api.yaml', 'crds/istio.yaml', 'amesh-node.yaml', 'amesh-controller-rbac.yaml', 'amesh-controller.yaml', 'amesh-controller-pdb.yaml']);
    const top = parse(readFileSync(join(DAEMONSET_DIR, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
    expect(top.resources[0]).toBe('crds');
  });

  it('is what the sandbox installs too: its API server serves RBAC and policy/v1, so nothing is bridged or left out', async () => {
    expect(installManifestFiles().map((f) => basename(f))).toContain('amesh-controller-pdb.yaml');
  });
});

describe('renderInstall with the default values', () => {
  it('renders the files unchanged (only reordered into apply order)', async () => {
    const rendered = await renderInstall();
    const raw = await rawObjects();
    const byKey = (list: KubernetesObject[]) => new Map(list.map((o) => [key(o), o]));
    expect(byKey(rendered)).toEqual(byKey(raw));
    expect(rendered).toHaveLength(raw.length);
  });

  it('puts CRDs, the namespace, identities and RBAC before the workloads, and the PDB last', async () => {
    const kinds = (await renderInstall()).map((o) => o.kind);
    const last = (k: string) => kinds.lastIndexOf(k);
    const first = (k: string) => kinds.indexOf(k);
    expect(kinds[0]).toBe('CustomResourceDefinition');
    expect(last('CustomResourceDefinition')).toBeLessThan(first('Namespace'));
    expect(first('Namespace')).toBeLessThan(first('ServiceAccount'));
    expect(last('ServiceAccount')).toBeLessThan(first('ClusterRole'));
    expect(last('RoleBinding')).toBeLessThan(first('DaemonSet'));
    expect(first('DaemonSet')).toBeLessThan(first('Deployment'));
    expect(first('Deployment')).toBeLessThan(first('Service'));
    expect(kinds.at(-1)).toBe('PodDisruptionBudget');
  });

  it('has a CRD, with v1 served, for every custom type the controller watches', async () => {
    const crds = (await renderInstall()).filter(isCrd) as Array<KubernetesObject & { spec: { group: string; names: { plural: string }; versions: Array<{ name: string; served: boolean; storage: boolean }> } }>;
    for (const r of Object.values(RESOURCES)) {
      if (BUILT_IN_GROUPS.includes(r.group)) continue;
      const crd = crds.find((c) => c.spec.group === r.group && c.spec.names.plural === r.plural);
      expect(crd, `${r.plural}.${r.group}`).toBeDefined();
      expect(crd?.spec.versions.find((v) => v.name === r.version)?.served, `${r.plural}.${r.group} ${r.version}`).toBe(true);
    }
    for (const crd of crds) {
      expect(crd.spec.versions.filter((v) => v.storage), crd.metadata?.name).toHaveLength(1);
      // The API server refuses a *.k8s.io CRD without this annotation.
      if (crd.spec.group.endsWith('.k8s.io')) expect(crd.metadata?.annotations?.['api-approved.kubernetes.io'], crd.metadata?.name).toBeTruthy();
    }
  });
});

describe('the node agent DaemonSet (issue #10)', async () => {
  const ds = agent(await renderInstall());
  const pod = ds.spec.template.spec;
  const c = container(ds);

  it('runs on the host network on every node, as a node-critical pod never captured itself', () => {
    expect(pod.hostNetwork).toBe(true);
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(ds.spec.template.metadata.labels?.['istio.io/dataplane-mode']).toBe('none');
  });

  it('surges one new agent beside the old one and declares no ports (they would be hostPorts)', () => {
    expect(ds.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    expect(c.ports).toBeUndefined();
    expect(ds.spec.template.metadata.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15020', 'prometheus.io/path': '/metrics' });
  });

  it('drops every capability but NET_ADMIN and BPF, unprivileged', () => {
    expect(c.securityContext).toMatchObject({ privileged: false, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'BPF'] } });
  });

  it('probes readiness and start-up on 15021, requests resources without a CPU limit', () => {
    expect(c.startupProbe?.httpGet).toEqual({ path: '/healthz/ready', port: 15021 });
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/healthz/ready', port: 15021 });
    expect(c.resources?.requests).toEqual({ cpu: '100m', memory: '128Mi' });
    expect(c.resources?.limits?.cpu).toBeUndefined();
  });

  it('mounts the host bpffs and an istio-ca token, and outlasts its drain on termination', () => {
    expect(pod.volumes?.find((v) => v.hostPath?.path === '/sys/fs/bpf')).toBeDefined();
    expect(c.volumeMounts?.map((m) => m.mountPath)).toContain('/sys/fs/bpf');
    const token = pod.volumes?.flatMap((v) => v.projected?.sources ?? []).find((s) => s.serviceAccountToken);
    expect(token?.serviceAccountToken?.audience).toBe('istio-ca');
    // AMESH_DRAIN_TIMEOUT_MS defaults to 20 s (src/config/agent-config.ts).
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(20 + 5);
    expect(env(c, 'AMESH_CAPTURE_MODE')).toBe('ebpf');
  });
});

describe('the controller Deployment', async () => {
  const objects = await renderInstall();
  const d = controller(objects);
  const c = container(d);

  it('runs as non-root without capabilities, probed, with requests and no CPU limit', () => {
    expect(d.spec.template.spec.securityContext?.runAsNonRoot).toBe(true);
    expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(c.readinessProbe?.httpGet?.port).toBe(15021);
    expect(c.startupProbe?.httpGet?.port).toBe(15021);
    expect(c.resources?.requests).toEqual({ cpu: '100m', memory: '256Mi' });
    expect(c.resources?.limits?.cpu).toBeUndefined();
  });

  it('tells the controller the waypoint and gateway images, which default to its own defaults', () => {
    expect(env(c, 'AMESH_WAYPOINT_IMAGE')).toBe(DEFAULT_WAYPOINT_IMAGE);
    expect(env(c, 'AMESH_GATEWAY_IMAGE')).toBe(DEFAULT_GATEWAY_IMAGE);
    // Every AMESH_* variable of the Deployment is a controller setting it accepts (unknown ones fail start-up).
    expect(readControllerConfig(settingsOf(c))).toMatchObject({ waypointImage: DEFAULT_WAYPOINT_IMAGE, gatewayImage: DEFAULT_GATEWAY_IMAGE, logLevel: 'info' });
  });

  it('has a PodDisruptionBudget that never blocks a drain of its single replica', () => {
    const pdb = find(objects, 'PodDisruptionBudget', 'amesh-controller') as KubernetesObject & { spec: { maxUnavailable?: number; minAvailable?: number } };
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(pdb.spec.minAvailable).toBeUndefined();
  });
});

describe('renderInstall with --set values', () => {
  it('changes images, pull policy, log level, capture mode and resources — nothing else', async () => {
    const values = parseSetFlags([
      'image.hub=localhost:5000/mesh',
      'image.tag=1.2.3',
      'image.pullPolicy=Always,logLevel=debug',
      'captureMode=nftables',
      'agent.resources.requests.cpu=250m',
      'controller.resources.limits.memory=3Gi',
    ]);
    const objects = await renderInstall(values);
    const a = container(agent(objects));
    const c = container(controller(objects));
    expect(a.image).toBe('localhost:5000/mesh/node-agent:1.2.3');
    expect(c.image).toBe('localhost:5000/mesh/controller:1.2.3');
    expect([a.imagePullPolicy, c.imagePullPolicy]).toEqual(['Always', 'Always']);
    expect([env(a, 'AMESH_LOG_LEVEL'), env(c, 'AMESH_LOG_LEVEL')]).toEqual(['debug', 'debug']);
    expect(env(a, 'AMESH_CAPTURE_MODE')).toBe('nftables');
    expect(env(c, 'AMESH_CAPTURE_MODE')).toBeUndefined();
    // What the controller deploys follows the same hub and tag.
    expect([env(c, 'AMESH_WAYPOINT_IMAGE'), env(c, 'AMESH_GATEWAY_IMAGE')]).toEqual(['localhost:5000/mesh/waypoint:1.2.3', 'localhost:5000/mesh/gateway:1.2.3']);
    expect(readControllerConfig(settingsOf(c))).toMatchObject({ waypointImage: 'localhost:5000/mesh/waypoint:1.2.3', gatewayImage: 'localhost:5000/mesh/gateway:1.2.3' });
    expect(env(a, 'AMESH_WAYPOINT_IMAGE')).toBeUndefined();
    expect(a.resources).toEqual({ requests: { cpu: '250m', memory: '128Mi' }, limits: { memory: '1Gi' } });
    expect(c.resources?.limits).toEqual({ memory: '3Gi' });

    // Everything but those two containers is as with the defaults.
    const defaults = await renderInstall();
    const strip = (list: KubernetesObject[]) => list.filter((o) => o.kind !== 'DaemonSet' && o.kind !== 'Deployment');
    expect(strip(objects)).toEqual(strip(defaults));
  });

  it('leaves the CRDs or the PDB out when asked', async () => {
    const noCrds = await renderInstall(parseSetFlags(['crds.install=false']));
    expect(noCrds.some(isCrd)).toBe(false);
    expect(noCrds.map((o) => o.kind)).toContain('DaemonSet');
    const noPdb = await renderInstall(parseSetFlags(['controller.podDisruptionBudget=false']));
    expect(noPdb.some((o) => o.kind === 'PodDisruptionBudget')).toBe(false);
    expect(noPdb.some(isCrd)).toBe(true);
    expect((await renderInstall()).some((o) => o.kind === 'PodDisruptionBudget')).toBe(true);
  });

  it('does not change its input objects', () => {
    const input: KubernetesObject[] = [{ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'amesh-controller' }, spec: { template: { spec: { containers: [{ name: 'c', image: 'amesh/controller:0.1.0' }] } } } } as KubernetesObject];
    const before = structuredClone(input);
    const out = applyValues(input, { ...DEFAULT_VALUES, 'image.tag': '9' });
    expect(input).toEqual(before);
    expect(((out[0] as Workload).spec.template.spec.containers[0] as Container).image).toBe('amesh/controller:9');
  });

  it('leaves images that are not amesh’s alone', () => {
    const input = [{ apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'amesh-node' }, spec: { template: { spec: { containers: [{ name: 'x', image: 'busybox:1.36' }] } } } } as KubernetesObject];
    const out = applyValues(input, { ...DEFAULT_VALUES, 'image.hub': 'elsewhere' });
    expect(((out[0] as Workload).spec.template.spec.containers[0] as Container)).toEqual({ name: 'x', image: 'busybox:1.36' });
  });

  it('prints as multi-document YAML that parses back to the same objects', async () => {
    const objects = await renderInstall();
    const text = toYaml(objects);
    expect(text.split(/^---$/m)).toHaveLength(objects.length);
    expect(text.split(/^---\n/m).map((d) => parse(d) as unknown)).toEqual(objects);
  });
});

describe('parseSetFlags', () => {
  it('returns the base values for no flags, and later flags win', () => {
    expect(parseSetFlags([])).toEqual(DEFAULT_VALUES);
    expect(parseSetFlags(['logLevel=warn', 'logLevel=error']).logLevel).toBe('error');
    expect(parseSetFlags(['image.tag=2'], { ...DEFAULT_VALUES, 'image.hub': 'x' })).toMatchObject({ 'image.hub': 'x', 'image.tag': '2' });
    expect(parseSetFlags(['crds.install=false', 'controller.podDisruptionBudget=false'])).toMatchObject({ 'crds.install': false, 'controller.podDisruptionBudget': false });
  });

  const failure = (flags: string[]): AmeshError => {
    try {
      parseSetFlags(flags);
    } catch (err) {
      if (err instanceof AmeshError) return err;
      throw err;
    }
    throw new Error(`parseSetFlags(${JSON.stringify(flags)}) did not fail`);
  };

  it.each([
    [['nope=1'], /unknown key "nope"/, /image\.hub/],
    [['logLevel'], /expected key=value/, /captureMode/],
    [['=x'], /expected key=value/, /logLevel/],
    [['captureMode=iptables'], /"iptables" is not a valid captureMode; expected ebpf, nftables, auto/, /AMESH_CAPTURE_MODE/],
    [['logLevel=loud'], /expected trace, debug, info, warn, error, fatal, silent/, /default: info/],
    [['image.pullPolicy=always'], /expected Always, IfNotPresent, Never/, /imagePullPolicy/],
    [['crds.install=yes'], /expected true, false/, /CRDs/],
    [['image.hub=amesh/'], /not a valid image\.hub/, /registry/],
    [['image.tag=a b'], /not a valid image\.tag/, /tag/],
    [['agent.resources.requests.memory=lots'], /expected a Kubernetes quantity/, /memory request/],
  ])('%j fails naming the problem and the valid choices', (flags, message, hint) => {
    const err = failure(flags);
    expect(err.code).toBe('AMESH_CONFIG_INVALID');
    expect(err.message).toMatch(message);
    expect(err.hint).toMatch(hint);
  });

  it('lists every key with its default in the help text', () => {
    const lines = describeValues();
    expect(lines).toHaveLength(VALUE_KEYS.length);
    for (const k of VALUE_KEYS) expect(lines.find((l) => l.startsWith(`${k} `))).toContain(`(default: ${String(DEFAULT_VALUES[k])})`);
  });
});
