// Per-component log levels: the registry follows children made after it was attached, a
// component's override wins over the enclosing component's and over the default, a bare level
// resets all, bad input names the bad piece and changes nothing, and the output really changes.
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { AmeshError } from '../../src/errors/amesh-error.js';
import { componentLogger, logLevels, parseLevelSpec, silentLogger } from '../../src/telemetry/logger.js';

function memoryLogger(level = 'info'): { root: Logger; lines: () => Array<{ component?: string; msg: string; level: number }> } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      out.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const root = pino({ level }, stream);
  return { root, lines: () => out.map((l) => JSON.parse(l) as { component?: string; msg: string; level: number }) };
}

describe('parseLevelSpec', () => {
  const known = new Set(['xds', 'access', 'proxy']);
  it('reads a bare level, component levels, and both mixed', () => {
    expect(parseLevelSpec('debug', known)).toEqual([{ kind: 'default', level: 'debug' }]);
    expect(parseLevelSpec('xds:debug,access:off', known)).toEqual([
      { kind: 'component', component: 'xds', level: 'debug' },
      { kind: 'component', component: 'access', level: 'off' },
    ]);
    expect(parseLevelSpec('warn, proxy:TRACE', known)).toEqual([
      { kind: 'default', level: 'warn' },
      { kind: 'component', component: 'proxy', level: 'trace' },
    ]);
  });

  it.each([
    ['loud', /unknown log level "loud"/, /valid levels: trace, debug, info, warn, error, fatal, off/],
    ['xds:loud', /unknown log level "loud" for component "xds"/, /valid levels/],
    ['nosuch:debug', /unknown log component "nosuch"/, /valid components: access, proxy, xds/],
    ['', /empty log level/, /level=/],
  ])('rejects %j naming what is wrong and what is valid', (spec, message, hint) => {
    let err: unknown;
    try {
      parseLevelSpec(spec, known);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AmeshError);
    expect((err as AmeshError).code).toBe('AMESH_CONFIG_INVALID');
    expect((err as AmeshError).message).toMatch(message);
    expect((err as AmeshError).hint).toMatch(hint);
  });
});

describe('LogLevels', () => {
  it('gives a component its own level while the others keep the default', () => {
    const { root, lines } = memoryLogger('info');
    const levels = logLevels(root);
    const xds = componentLogger(root, 'xds');
    const proxy = root.child({ component: 'proxy' });
    xds.debug('xds before');
    levels.set('xds:debug');
    xds.debug('xds after');
    proxy.debug('proxy debug');
    root.debug('root debug');
    proxy.info('proxy info');
    expect(lines().map((l) => l.msg)).toEqual(['xds after', 'proxy info']);
    expect(levels.view()).toMatchObject({ level: 'info', components: { access: 'info', proxy: 'info', xds: 'debug' }, overrides: { xds: 'debug' } });
  });

  it('turns the access log off and on again', () => {
    const { root, lines } = memoryLogger('info');
    const levels = logLevels(root);
    const access = root.child({ component: 'access' });
    levels.set('access:off');
    access.info('dropped');
    expect(levels.view().components.access).toBe('off');
    levels.set('access:info');
    access.info('kept');
    expect(lines().map((l) => l.msg)).toEqual(['kept']);
  });

  it('lets a nested component follow its enclosing one unless it has its own level', () => {
    const { root, lines } = memoryLogger('info');
    const levels = logLevels(root);
    const xds = root.child({ component: 'xds' });
    const client = xds.child({ component: 'xds-client' });
    const plainChild = xds.child({ resource: 'pods' });
    levels.set('xds:debug');
    client.debug('client 1');
    plainChild.debug('plain 1');
    levels.set('xds-client:warn');
    client.debug('client 2');
    plainChild.debug('plain 2');
    expect(lines().map((l) => l.msg)).toEqual(['client 1', 'plain 1', 'plain 2']);
    expect(levels.view().components).toMatchObject({ xds: 'debug', 'xds-client': 'warn' });
  });

  it('a bare level sets every component and drops the overrides', () => {
    const { root, lines } = memoryLogger('info');
    const levels = logLevels(root);
    const a = root.child({ component: 'a' });
    const b = root.child({ component: 'b' });
    levels.set('a:error,b:off');
    levels.set('debug');
    a.debug('a');
    b.debug('b');
    root.debug('root');
    expect(lines().map((l) => l.msg)).toEqual(['a', 'b', 'root']);
    expect(levels.view()).toMatchObject({ level: 'debug', overrides: {}, components: { a: 'debug', b: 'debug' } });
  });

  it('a child made after a change starts at its effective level', () => {
    const { root, lines } = memoryLogger('info');
    const levels = logLevels(root);
    levels.declare('late');
    levels.set('late:debug');
    const late = root.child({ component: 'late' });
    late.debug('late debug');
    expect(lines().map((l) => l.msg)).toEqual(['late debug']);
  });

  it('applies nothing when one clause is bad', () => {
    const { root } = memoryLogger('info');
    const levels = logLevels(root);
    root.child({ component: 'xds' });
    expect(() => levels.set('xds:debug,nosuch:debug')).toThrow(/unknown log component "nosuch"/);
    expect(levels.view().components.xds).toBe('info');
  });

  it('keeps the shared silent logger silent', () => {
    const levels = logLevels(silentLogger);
    expect(() => levels.set('debug')).toThrow(/silent logger/);
    expect(silentLogger.level).toBe('silent');
  });
});
