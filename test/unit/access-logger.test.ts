// The buffered access log: lines reach the file descriptor when the timer flushes or the logger
// closes, not per line; and `/logging` governs it like any `access` child of the root (it is a
// root of its own, adopted by the root's level registry), including its own children.
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { destination, pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAccessLogger, type AccessLogger } from '../../src/telemetry/access-logger.js';
import { logLevels, silentLogger } from '../../src/telemetry/logger.js';
import { eventually } from '../helpers/eventually.js';

interface Line {
  name?: string;
  component?: string;
  msg: string;
  level: number;
}

describe('createAccessLogger', () => {
  let dir: string;
  let file: string;
  let fd: number;
  let access: AccessLogger | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'amesh-access-log-'));
    file = join(dir, 'stderr');
    fd = openSync(file, 'a');
  });

  afterEach(async () => {
    access?.close();
    access = undefined;
    closeSync(fd);
    await rm(dir, { recursive: true, force: true });
  });

  const lines = (): Line[] =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line);

  it('buffers lines until close, which writes them all, named and tagged access', () => {
    const root = pino({ level: 'info' }, destination({ dest: fd, sync: true }));
    access = createAccessLogger(root, { name: 'amesh-node-agent', fd, flushMs: 60_000 });
    for (let i = 0; i < 3; i++) access.logger.info({ i }, 'connection complete');
    expect(lines()).toEqual([]);
    access.close();
    expect(lines()).toHaveLength(3);
    expect(lines()[0]).toMatchObject({ name: 'amesh-node-agent', component: 'access', msg: 'connection complete', level: 30 });
  });

  it('flushes pending lines every flushMs', async () => {
    const root = pino({ level: 'info' }, destination({ dest: fd, sync: true }));
    access = createAccessLogger(root, { name: 'amesh-waypoint', fd, flushMs: 20 });
    access.logger.info('request complete');
    await eventually(() => expect(lines()).toHaveLength(1), { timeoutMs: 5000, intervalMs: 10, description: 'the timer flushed the line' });
  });

  it('follows the root’s /logging levels, for itself and its children', () => {
    const root = pino({ level: 'info' }, destination({ dest: fd, sync: true }));
    const levels = logLevels(root);
    access = createAccessLogger(root, { name: 'amesh-node-agent', fd, flushMs: 60_000 });
    const child = access.logger.child({ direction: 'inbound' });
    expect(levels.view().components).toMatchObject({ access: 'info' });

    levels.set('access:off');
    access.logger.info('dropped');
    child.info('dropped');
    levels.set('access:debug');
    access.logger.debug('kept');
    child.debug('kept');
    levels.set('warn');
    access.logger.info('dropped');
    child.warn('kept');
    access.close();
    expect(lines().map((l) => l.msg)).toEqual(['kept', 'kept', 'kept']);
    expect(levels.view().components).toMatchObject({ access: 'warn' });
  });

  it('starts at the root’s level for the access component (an override made before it)', () => {
    const root = pino({ level: 'info' }, destination({ dest: fd, sync: true }));
    logLevels(root).set('access:error');
    access = createAccessLogger(root, { name: 'amesh-gateway', fd, flushMs: 60_000 });
    expect(access.logger.level).toBe('error');
  });

  it('leaves the shared silent logger’s registry untouched', () => {
    access = createAccessLogger(silentLogger, { name: 'test', fd, flushMs: 60_000 });
    expect(() => logLevels(silentLogger).set('access:debug')).toThrow(/silent logger/);
    expect(silentLogger.level).toBe('silent');
  });
});
