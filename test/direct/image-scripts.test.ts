/**
 * scripts/kind-load.sh and the argument checks of scripts/build-image-rootfs.sh, run for real
 * with a PATH that holds only the tools they need plus stand-ins: a `docker` whose daemon is
 * down, a working `docker` and `kind` that record their arguments. No engine or cluster is
 * touched. (build-image-rootfs.sh itself takes minutes — docs/images.md gives the command.)
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '..', '..');
const KIND_LOAD = join(REPO, 'scripts', 'kind-load.sh');
const ROOTFS = join(REPO, 'scripts', 'build-image-rootfs.sh');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const TOOLS = ['bash', 'node', 'sed', 'grep', 'mktemp', 'tr', 'rm', 'dirname', 'cat', 'ls', 'mkdir', 'env'];

let dir = '';
let bin = '';
let log = '';

function which(tool: string): string {
  const r = spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${tool} not found`);
  return r.stdout.trim();
}

/** A stand-in command: appends `name args…` to the log, then runs `body`. */
function stub(name: string, body = 'exit 0'): void {
  const file = join(bin, name);
  writeFileSync(file, `#!/bin/bash\necho "${name} $*" >> ${JSON.stringify(log)}\n${body}\n`);
  chmodSync(file, 0o755);
}

function run(script: string, ...args: string[]) {
  return spawnSync('bash', [script, ...args], { encoding: 'utf8', env: { PATH: bin, HOME: dir }, timeout: 30_000 });
}

const calls = (): string[] => readFileSync(log, 'utf8').trim().split('\n').filter(Boolean);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'amesh-image-scripts-'));
  bin = join(dir, 'bin');
  log = join(dir, 'calls.log');
  mkdirSync(bin);
  writeFileSync(log, '');
  for (const tool of TOOLS) symlinkSync(which(tool), join(bin, tool));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('scripts/kind-load.sh', () => {
  it('refuses without a container engine; a docker CLI whose daemon is down does not count', () => {
    stub('docker', '[ "$1" = info ] && exit 1; exit 0');
    const r = run(KIND_LOAD);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('no container engine: install Docker (with its daemon running), Podman or Buildah');
    expect(r.stderr).toContain('scripts/build-image-rootfs.sh');
    expect(calls()).toEqual(['docker info']);
  });

  it('refuses without kind, before building anything', () => {
    stub('docker');
    const r = run(KIND_LOAD);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('kind is not installed');
    expect(calls()).toEqual(['docker info']);
  });

  it('refuses when the kind cluster does not exist', () => {
    stub('docker');
    stub('kind', '[ "$1 $2" = "get clusters" ] && echo other');
    const r = run(KIND_LOAD, '--cluster', 'mesh');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("no kind cluster named 'mesh'");
  });

  it('builds the three Dockerfiles under the manifests\' names and loads all four images, with progress', () => {
    stub('docker');
    stub('kind', '[ "$1 $2" = "get clusters" ] && echo mesh; exit 0');
    const r = run(KIND_LOAD, '--cluster', 'mesh');
    expect(r.status, r.stderr).toBe(0);
    const t = (name: string): string => `${name}:${VERSION}`;
    expect(calls().filter((c) => !c.startsWith('kind get') && c !== 'docker info')).toEqual([
      `docker build -f images/node/Dockerfile --build-arg VERSION=${VERSION} -t ${t('amesh/node-agent')} .`,
      `docker build -f images/controller/Dockerfile --build-arg VERSION=${VERSION} -t ${t('amesh/controller')} .`,
      `docker build -f images/waypoint/Dockerfile --build-arg VERSION=${VERSION} -t ${t('amesh/waypoint')} -t ${t('amesh/gateway')} .`,
      ...['amesh/node-agent', 'amesh/controller', 'amesh/waypoint', 'amesh/gateway'].map((n) => `kind load docker-image ${t(n)} --name mesh`),
    ]);
    expect(r.stdout).toContain('==> loading amesh/gateway:' + VERSION + ' into kind cluster mesh (4/4)');
    expect(r.stdout).toContain('==> done: 4 images in kind cluster mesh');
  });

  it('names the images after --hub and --tag (for amesh install --set image.hub=… image.tag=…)', () => {
    stub('docker');
    stub('kind', '[ "$1 $2" = "get clusters" ] && echo kind; exit 0');
    const r = run(KIND_LOAD, '--hub', 'localhost:5001/mesh', '--tag', 'dev');
    expect(r.status, r.stderr).toBe(0);
    expect(calls().filter((c) => c.startsWith('docker build')).map((c) => c.split(' -t ').slice(1).join(' ').replace(/ \.$/, ''))).toEqual([
      'localhost:5001/mesh/node-agent:dev',
      'localhost:5001/mesh/controller:dev',
      'localhost:5001/mesh/waypoint:dev localhost:5001/mesh/gateway:dev',
    ]);
    expect(calls().filter((c) => c.startsWith('kind load'))).toHaveLength(4);
  });

  it('stops at the first failed build', () => {
    stub('docker', '[ "$1" = build ] && exit 3; exit 0');
    stub('kind', '[ "$1 $2" = "get clusters" ] && echo kind; exit 0');
    const r = run(KIND_LOAD);
    expect(r.status).toBe(3);
    expect(calls().filter((c) => c.startsWith('kind load'))).toEqual([]);
  });
});

describe('scripts/build-image-rootfs.sh arguments', () => {
  it('names the valid images for an unknown one', () => {
    const r = run(ROOTFS, 'nodes', join(dir, 'out'));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("unknown image 'nodes': expected node, controller or waypoint");
  });

  it('refuses a non-empty output directory', () => {
    const out = join(dir, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'keep'), '');
    const r = run(ROOTFS, 'controller', out);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('is not empty');
    expect(readFileSync(join(out, 'keep'), 'utf8')).toBe('');
  });
});
