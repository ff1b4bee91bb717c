/**
 * The compiled CLI without the repository around it (as in a container image that carries
 * dist/ but not daemonset/ or waypoint/): `amesh --help` loads every command family, so no module
 * may read the install manifests or templates when it is loaded — only when a command needs them.
 * `amesh install --dry-run` then fails naming the missing manifest list instead of crashing.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../src/install/paths.js';

const DIST_MAIN = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

describe('the compiled CLI outside the repository', () => {
  let root = '';

  beforeAll(() => {
    if (!existsSync(DIST_MAIN)) throw new Error(`the CLI is not built (${DIST_MAIN} is missing): run \`npm run build:ts\` first`);
    root = mkdtempSync(join(tmpdir(), 'amesh-cli-bare-'));
    mkdirSync(join(root, 'bin'));
    cpSync(join(REPO_ROOT, 'bin', 'amesh.js'), join(root, 'bin', 'amesh.js'));
    cpSync(join(REPO_ROOT, 'package.json'), join(root, 'package.json'));
    cpSync(join(REPO_ROOT, 'dist', 'src'), join(root, 'dist', 'src'), { recursive: true });
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(root, 'node_modules'));
  });

  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const amesh = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'amesh.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

  it('prints --help (every family loaded) with no daemonset/ next to it', () => {
    expect(existsSync(join(root, 'daemonset'))).toBe(false);
    const help = amesh('--help');
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/install/);
    expect(help.stdout).toMatch(/sandbox/);
  });

  it('prints install --help (the --set keys) and refuses --dry-run naming the missing manifest list', () => {
    const help = amesh('install', '--help');
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/image\.hub/);
    const dryRun = amesh('install', '--dry-run');
    expect(dryRun.status).toBe(1);
    expect(dryRun.stderr).toContain(join(root, 'daemonset', 'kustomization.yaml'));
    expect(dryRun.stderr).toMatch(/run it from an amesh checkout or release/);
    expect(dryRun.stderr).not.toMatch(/^\s+at /m);
  });
});
