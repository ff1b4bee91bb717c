/**
 * Structured JSON logging through pino. Components take a child logger with a `component`
 * binding (`componentLogger(root, 'xds')`, or `root.child({ component: 'xds' })`); the root level
 * comes from config (AMESH_LOG_LEVEL).
 *
 * Per-component levels (the admin `/logging`, Istio/ztunnel style `level=xds:debug,access:off`):
 * a LogLevels registry on the root follows every descendant created after it was attached
 * (pino's `onChild`, which descendants inherit), remembers each one's component path, and keeps
 * each logger's own pino level equal to its effective level:
 *   - the override of its innermost component that has one (`xds-client` under `xds` follows
 *     `xds` unless `xds-client` has its own), else
 *   - the default level (the root's).
 * A bare level (`level=debug`) sets the default and drops every override, so it reaches all.
 * Changes are validated as a whole before any applies. createLogger attaches the registry at
 * once; `logLevels(logger)` attaches one lazily (children made before that are not followed).
 * Loggers are held weakly: a component logger that is dropped is forgotten.
 */
import { destination, pino, type Logger } from 'pino';
import { AmeshError } from '../errors/amesh-error.js';

export type { Logger };

/** The levels `/logging` accepts, Istio's names (`off` is pino's `silent`). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'off'] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];

/** The access log's component: always listed, so `access:off` works before the first entry. */
export const ACCESS_LOG_COMPONENT = 'access';

function isLevel(s: string): s is LogLevelName {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

function toPino(level: LogLevelName): string {
  return level === 'off' ? 'silent' : level;
}

function fromPino(level: string): LogLevelName {
  if (level === 'silent') return 'off';
  return isLevel(level) ? level : 'info';
}

export interface LogLevelsView {
  /** The default level: every component without an override. */
  level: LogLevelName;
  /** Every known component with its effective level, sorted by name. */
  components: Record<string, LogLevelName>;
  /** The components that have their own level. */
  overrides: Record<string, LogLevelName>;
}

/** One parsed clause of a `level=` spec. */
export type LevelChange = { kind: 'default'; level: LogLevelName } | { kind: 'component'; component: string; level: LogLevelName };

/**
 * Pure: parse `debug`, `xds:debug,access:off`, or `info,xds:debug`. Throws AMESH_CONFIG_INVALID
 * naming the bad clause, level or component and listing the valid ones.
 */
export function parseLevelSpec(spec: string, knownComponents: ReadonlySet<string>): LevelChange[] {
  const clauses = spec.split(',').map((c) => c.trim()).filter((c) => c !== '');
  if (clauses.length === 0) {
    throw new AmeshError('AMESH_CONFIG_INVALID', 'empty log level', { hint: `use level=<${LOG_LEVELS.join('|')}> or level=<component>:<level>,…` });
  }
  const components = [...knownComponents].sort();
  return clauses.map((clause): LevelChange => {
    const colon = clause.lastIndexOf(':');
    const levelText = (colon === -1 ? clause : clause.slice(colon + 1)).toLowerCase();
    const component = colon === -1 ? undefined : clause.slice(0, colon);
    if (!isLevel(levelText)) {
      throw new AmeshError('AMESH_CONFIG_INVALID', `unknown log level "${levelText}"${component !== undefined ? ` for component "${component}"` : ''}`, {
        hint: `valid levels: ${LOG_LEVELS.join(', ')}`,
      });
    }
    if (component === undefined) return { kind: 'default', level: levelText };
    if (!knownComponents.has(component)) {
      throw new AmeshError('AMESH_CONFIG_INVALID', `unknown log component "${component}"`, { hint: `valid components: ${components.join(', ')}` });
    }
    return { kind: 'component', component, level: levelText };
  });
}

interface Followed {
  ref: WeakRef<Logger>;
  /** Component path, outermost first (empty: the root or a child without a component). */
  path: readonly string[];
}

export class LogLevels {
  private defaultLevel: LogLevelName;
  private readonly overrides = new Map<string, LogLevelName>();
  private readonly followed: Followed[] = [];
  private readonly paths = new WeakMap<Logger, readonly string[]>();
  private readonly declared = new Set<string>([ACCESS_LOG_COMPONENT]);
  private pruneAt = 64;

  constructor(private readonly root: Logger) {
    this.defaultLevel = fromPino(root.level);
    this.paths.set(root, []);
    // The shared silent logger stays silent: turning it up would print every test's logs.
    if (root === silentLogger) return;
    const previous = root.onChild;
    root.onChild = (child: Logger): void => {
      previous.call(root, child);
      this.follow(child);
    };
  }

  /**
   * Follows `logger`, a root of its own (another destination: the buffered access log), and its
   * descendants as the component `component`, as if it were that component's child of the root.
   */
  adopt(logger: Logger, component: string): void {
    this.declared.add(component);
    if (this.root === silentLogger) return;
    const previous = logger.onChild;
    logger.onChild = (child: Logger): void => {
      previous.call(logger, child);
      this.follow(child);
    };
    this.track(logger, [component]);
  }

  private follow(child: Logger): void {
    const parentPath = this.paths.get(Object.getPrototypeOf(child) as Logger) ?? [];
    const component = (child.bindings() as { component?: unknown }).component;
    this.track(child, typeof component === 'string' && component !== parentPath.at(-1) ? [...parentPath, component] : parentPath);
  }

  private track(child: Logger, path: readonly string[]): void {
    this.paths.set(child, path);
    this.followed.push({ ref: new WeakRef(child), path });
    if (this.followed.length >= this.pruneAt) {
      this.prune();
      this.pruneAt = Math.max(64, this.followed.length * 2);
    }
    const level = toPino(this.effective(path));
    if (child.level !== level) child.level = level;
  }

  private prune(): void {
    let kept = 0;
    for (const f of this.followed) if (f.ref.deref()) this.followed[kept++] = f;
    this.followed.length = kept;
  }

  private effective(path: readonly string[]): LogLevelName {
    for (let i = path.length - 1; i >= 0; i--) {
      const level = this.overrides.get(path[i] as string);
      if (level) return level;
    }
    return this.defaultLevel;
  }

  /** A component listed (and settable) even while no logger of it exists. */
  declare(component: string): void {
    this.declared.add(component);
  }

  /** Every component seen (live loggers) or declared. */
  components(): Set<string> {
    const all = new Set(this.declared);
    for (const f of this.followed) if (f.ref.deref()) for (const c of f.path) all.add(c);
    return all;
  }

  view(): LogLevelsView {
    const components: Record<string, LogLevelName> = {};
    for (const c of [...this.components()].sort()) {
      // A component's own level: its override, else the nearest enclosing one of a live path.
      const path = this.followed.find((f) => f.path.at(-1) === c && f.ref.deref())?.path ?? [c];
      components[c] = this.effective(path);
    }
    return { level: this.defaultLevel, components, overrides: Object.fromEntries([...this.overrides].sort(([a], [b]) => a.localeCompare(b))) };
  }

  /** Parse and apply a `level=` spec (all or nothing); returns the new view. */
  set(spec: string): LogLevelsView {
    const changes = parseLevelSpec(spec, this.components());
    if (this.root === silentLogger) {
      throw new AmeshError('AMESH_CONFIG_INVALID', 'this process logs through the silent logger; its levels cannot be changed', { hint: 'give the process a logger from createLogger()' });
    }
    for (const change of changes) {
      if (change.kind === 'default') {
        this.defaultLevel = change.level;
        this.overrides.clear();
      } else this.overrides.set(change.component, change.level);
    }
    this.prune();
    this.root.level = toPino(this.effective([]));
    for (const f of this.followed) {
      const logger = f.ref.deref();
      if (logger) logger.level = toPino(this.effective(f.path));
    }
    return this.view();
  }
}

const registries = new WeakMap<Logger, LogLevels>();

/** The level registry of `root`, attached now if it has none. */
export function logLevels(root: Logger): LogLevels {
  let r = registries.get(root);
  if (!r) {
    r = new LogLevels(root);
    registries.set(root, r);
  }
  return r;
}

/** A component's child logger; its level follows `/logging` (`level=<name>:<level>`). */
export function componentLogger(root: Logger, component: string): Logger {
  logLevels(root).declare(component);
  return root.child({ component });
}

export function createLogger(level: string = process.env.AMESH_LOG_LEVEL ?? 'info', name = 'amesh'): Logger {
  const logger = pino({ name, level, base: { pid: process.pid } }, destination({ dest: 2, sync: true }));
  logLevels(logger);
  return logger;
}

/** A logger that drops everything: the default for tests. Never attach a level registry to it. */
export const silentLogger: Logger = pino({ level: 'silent' });
