/**
 * The container images (images/*\/Dockerfile, issue #10), checked without a container engine:
 * dockerfile-utils' validator finds syntax and instruction errors, and the small reader in
 * test/helpers/dockerfile.ts lets us assert the facts the manifests rely on — multi-stage, a Node 24
 * slim runtime on the build's Debian release, exec-form ENTRYPOINT with node's own flags for the
 * program (src/config/runtime-flags.ts), the CMD each manifest's
 * `args` names, non-root controller and waypoint with the templates' uid, the node agent's BPF
 * object and native addon where the agent looks for them, no remote ADD, and every COPY source
 * present (in the build context and not .dockerignore'd, or produced by an earlier stage).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { NODE_AGENT_FLAGS, nodeFlagsFor, type NodeFlag } from '../../src/config/runtime-flags.js';
import { DEFAULT_GATEWAY_IMAGE } from '../../src/controller/gateway/ingress-render.js';
import { DEFAULT_WAYPOINT_IMAGE } from '../../src/controller/waypoint/render.js';
import { nativeAddonPath } from '../../src/native/addon.js';
import { bpfObjectPath, packageRoot } from '../../src/node-agent/capture/bpf-contract.js';
import { BUILT_IN_IMAGES, parseImageReference } from '../../src/sandbox/images/catalog.js';
import { execForm, isIgnored, parseCopy, parseDockerfile, readIgnorePatterns, workdirOf, type Dockerfile, type Stage } from '../helpers/dockerfile.js';

const REPO = join(import.meta.dirname, '..', '..');
const read = (path: string): string => readFileSync(join(REPO, path), 'utf8');
const IGNORED = readIgnorePatterns(read('.dockerignore'));

interface ImageSpec {
  dockerfile: string;
  names: string[];
  root: boolean;
  /** node's own flags in the ENTRYPOINT, before the CLI, for the runtime image's Node (src/config/runtime-flags.ts). */
  nodeFlags: readonly NodeFlag[];
}
const IMAGES: Record<string, ImageSpec> = {
  node: { dockerfile: 'images/node/Dockerfile', names: ['amesh/node-agent'], root: true, nodeFlags: NODE_AGENT_FLAGS },
  controller: { dockerfile: 'images/controller/Dockerfile', names: ['amesh/controller'], root: false, nodeFlags: [] },
  waypoint: { dockerfile: 'images/waypoint/Dockerfile', names: ['amesh/waypoint', 'amesh/gateway'], root: false, nodeFlags: [] },
};

const parsed = (spec: ImageSpec): Dockerfile => parseDockerfile(read(spec.dockerfile));
const runtimeOf = (d: Dockerfile): Stage => d.stages[d.stages.length - 1]!;
const all = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
const last = (stage: Stage, keyword: string) => all(stage, keyword).at(-1);
const runs = (stage: Stage): string => all(stage, 'RUN').map((i) => i.args).join('\n');
const copies = (stage: Stage) => all(stage, 'COPY').map(parseCopy);
/** Node major of a node image tag (node:24-bookworm-slim, node:24.11.1-… → 24). */
const nodeMajorOf = (base: string): number | undefined => {
  const major = /^node:(\d+)[.-]/.exec(base)?.[1];
  return major === undefined ? undefined : Number(major);
};
/** Debian codename of a node image tag (node:24-bookworm-slim → bookworm). */
const debianOf = (base: string): string | undefined => /^node:[\d.]+-(\w+?)(?:-slim)?(?:@.*)?$/.exec(base)?.[1];

/** What the manifests run: image name → the container's args (deployed objects and the controller's templates). */
function manifestContainers(): Map<string, { args: string[]; runAsUser?: number; source: string }> {
  const out = new Map<string, { args: string[]; runAsUser?: number; source: string }>();
  const visit = (text: string, source: string, image?: string): void => {
    for (const doc of parseAllDocuments(text)) {
      const obj = doc.toJS() as { spec?: { template?: { spec?: { securityContext?: { runAsUser?: number }; containers?: Array<{ image?: string; args?: string[]; securityContext?: { runAsUser?: number } }> } } } } | null;
      const pod = obj?.spec?.template?.spec;
      for (const c of pod?.containers ?? []) {
        const ref = c.image === '${IMAGE}' ? image : c.image;
        if (!ref) continue;
        const runAsUser = c.securityContext?.runAsUser ?? pod?.securityContext?.runAsUser;
        out.set(parseImageReference(ref).name, { args: c.args ?? [], ...(runAsUser !== undefined ? { runAsUser } : {}), source });
      }
    }
  };
  for (const file of ['daemonset/amesh-node.yaml', 'daemonset/amesh-controller.yaml']) visit(read(file), file);
  visit(read('waypoint/waypoint.yaml'), 'waypoint/waypoint.yaml', DEFAULT_WAYPOINT_IMAGE);
  visit(read('waypoint/gateway.yaml'), 'waypoint/gateway.yaml', DEFAULT_GATEWAY_IMAGE);
  return out;
}

/** Which RUN in a stage produces a path under it (the stage's generated outputs). */
const PRODUCERS: Array<[RegExp, RegExp]> = [
  [/\/node_modules$/, /\bnpm ci\b/],
  [/\/dist(\/|$)/, /\btsc -p tsconfig\.build\.json\b/],
  [/\/bpf\/build\//, /\bscripts\/build-bpf\.sh\b/],
  [/\/native\/build\//, /\bnpm run build:native\b|\bnode-gyp rebuild\b/],
];

describe.each(Object.entries(IMAGES))('images/%s/Dockerfile', (_key, spec) => {
  const dockerfile = parsed(spec);
  const runtime = runtimeOf(dockerfile);

  it('passes dockerfile-utils validation with no error or warning', async () => {
    const validate = await loadValidator();
    const problems = validate(read(spec.dockerfile)).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
    expect(problems).toEqual([]);
  });

  it('is multi-stage, with a Node 24 slim runtime on the same Debian release as every build stage', () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    expect(runtime.base).toMatch(/^node:24(?:\.\d+){0,2}-(?:bookworm|trixie)-slim(?:@sha256:[0-9a-f]{64})?$/);
    // The native addon links the system libbpf: built and run on one Debian release.
    for (const stage of dockerfile.stages) expect(debianOf(stage.base), `${stage.name ?? 'runtime'}: ${stage.base}`).toBe(debianOf(runtime.base));
  });

  it('starts the CLI in exec form, with the CMD the manifests pass as args', () => {
    expect(all(runtime, 'ENTRYPOINT')).toHaveLength(1);
    // The flags of the image's own Node major: Node 24's V8 takes flags Node 20's refuses.
    const major = nodeMajorOf(runtime.base);
    expect(major, runtime.base).toBeDefined();
    expect(execForm(last(runtime, 'ENTRYPOINT')!)).toEqual(['node', ...nodeFlagsFor(spec.nodeFlags, major!), '/app/bin/amesh.js']);
    const cmd = execForm(last(runtime, 'CMD')!);
    const containers = manifestContainers();
    for (const name of spec.names) {
      const c = containers.get(name);
      expect(c, `no manifest runs ${name}`).toBeDefined();
      if (name === spec.names[0]) expect(cmd, c!.source).toEqual(c!.args);
    }
  });

  it(spec.root ? 'runs as root (the agent needs NET_ADMIN, BPF, SYS_ADMIN on the host)' : 'runs as the numeric non-root uid the manifests set', () => {
    const user = last(runtime, 'USER')?.args;
    if (spec.root) {
      expect(user === undefined || /^(root|0)(:|$)/.test(user)).toBe(true);
      return;
    }
    expect(user).toMatch(/^\d+:\d+$/);
    const uid = Number(user!.split(':')[0]);
    expect(uid).toBeGreaterThan(0);
    for (const name of spec.names) {
      const runAsUser = manifestContainers().get(name)?.runAsUser;
      if (runAsUser !== undefined) expect(uid, `${name}'s runAsUser`).toBe(runAsUser);
    }
  });

  it('fetches nothing with ADD', () => {
    for (const stage of dockerfile.stages) {
      for (const add of all(stage, 'ADD')) expect(parseCopy(add).sources.filter((s) => /^(?:https?|git|ssh):|^git@/.test(s)), `line ${add.line}`).toEqual([]);
    }
  });

  it('copies only what exists: context paths not .dockerignored, stage outputs that a RUN of that stage makes', () => {
    const names: string[] = [];
    for (const stage of dockerfile.stages) {
      for (const copy of [...copies(stage), ...all(stage, 'ADD').map(parseCopy)]) {
        const from = copy.flags.from;
        if (from === undefined) {
          for (const source of copy.sources) {
            expect(existsSync(join(REPO, source)), `line ${copy.line}: ${source} is not in the repository`).toBe(true);
            expect(isIgnored(source, IGNORED), `line ${copy.line}: ${source} is excluded by .dockerignore`).toBe(false);
          }
          continue;
        }
        const origin = dockerfile.stages.find((s) => s.name === from);
        expect(names, `line ${copy.line}: --from=${from} names no earlier stage`).toContain(from);
        const workdir = workdirOf(origin!);
        for (const source of copy.sources) {
          expect(source.startsWith(`${workdir}/`), `line ${copy.line}: ${source} is outside ${from}'s ${workdir}`).toBe(true);
          const producer = PRODUCERS.find(([path]) => path.test(source));
          expect(producer, `line ${copy.line}: nothing known produces ${source}`).toBeDefined();
          expect(runs(origin!), `line ${copy.line}: stage ${from} has no RUN making ${source}`).toMatch(producer![1]);
        }
      }
      if (stage.name) names.push(stage.name);
    }
  });

  it('ships the package root the CLI needs and production node_modules only', () => {
    const targets = copies(runtime).flatMap((c) => c.sources.map((source) => copyTarget(source, c.destination, '/app')));
    expect(workdirOf(runtime)).toBe('/app');
    for (const path of ['/app/package.json', '/app/bin', '/app/proto', '/app/daemonset', '/app/waypoint', '/app/dist/src', '/app/node_modules']) expect(targets).toContain(path);
    const modules = copies(runtime).find((c) => c.destination.replace(/^\.\//, '') === 'node_modules');
    const depsStage = dockerfile.stages.find((s) => s.name === modules?.flags.from);
    expect(runs(depsStage!)).toMatch(/\bnpm ci\b[^\n]*--omit=dev/);
  });
});

describe('images/node/Dockerfile: the eBPF side', () => {
  const dockerfile = parsed(IMAGES.node!);
  const runtime = runtimeOf(dockerfile);
  const fromBuild = copies(runtime).filter((c) => c.flags.from !== undefined);

  it.each([
    ['the capture program', bpfObjectPath()],
    ['the native addon', nativeAddonPath()],
  ])('copies %s built in the image to where the agent loads it', (_what, hostPath) => {
    const inApp = `/app/${relative(packageRoot(), hostPath)}`;
    const copy = fromBuild.find((c) => c.destination.replace(/^\.\//, '/app/') === inApp);
    expect(copy, `no COPY --from=… to ${inApp}`).toBeDefined();
    const build = dockerfile.stages.find((s) => s.name === copy!.flags.from)!;
    expect(copy!.sources).toEqual([`${workdirOf(build)}/${relative(packageRoot(), hostPath)}`]);
  });

  it('installs what the agent runs and links at run time', () => {
    const installed = runs(runtime);
    for (const pkg of ['iproute2', 'nftables', 'libbpf1', 'libelf1']) expect(installed).toMatch(new RegExp(`apt-get install[^\\n]*\\b${pkg}\\b`));
  });
});

describe('image names', () => {
  it('scripts/kind-load.sh builds each Dockerfile under every name the manifests, the controller and the sandbox use', () => {
    const table = [...read('scripts/kind-load.sh').matchAll(/^\s+"(images\/\S+\/Dockerfile) ([^"]+)"$/gm)].map((m) => ({ dockerfile: m[1]!, names: m[2]!.split(' ') }));
    expect(table).toEqual(Object.values(IMAGES).map(({ dockerfile, names }) => ({ dockerfile, names })));
    const built = new Set(table.flatMap((t) => t.names));
    for (const name of manifestContainers().keys()) expect(built, `${name} is used by a manifest but built by no Dockerfile`).toContain(name);
    for (const name of built) expect(BUILT_IN_IMAGES, `the sandbox does not run ${name}`).toContain(name);
  });
});

/** Where COPY puts `source` (a destination ending in / or naming the workdir is a directory). */
function copyTarget(source: string, destination: string, workdir: string): string {
  const dest = destination.startsWith('/') ? destination : `${workdir}/${destination.replace(/^\.\/?/, '')}`;
  return dest.endsWith('/') ? `${dest}${source.split('/').at(-1)}` : dest;
}

type Validate = (content: string) => Array<{ message: string; range: { start: { line: number } } }>;

/** dockerfile-utils, loaded by name so that a missing devDependency fails this test with the fix, not the type check. */
async function loadValidator(): Promise<Validate> {
  const name = 'dockerfile-utils';
  try {
    return ((await import(name)) as { validate: Validate }).validate;
  } catch (err) {
    throw new Error(`the Dockerfile validator ${name} is not installed (npm i -D ${name}): ${(err as Error).message}`);
  }
}
