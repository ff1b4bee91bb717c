/**
 * Istio Telemetry `accessLogging[].filter.expression`: the CEL subset people write there, compiled
 * once (when a config arrives) into a closure the proxies call per access-log entry.
 *
 * Supported (https://github.com/google/cel-spec/blob/master/doc/langdef.md, Istio's attribute names):
 * - literals: int (`400`, `-1`), string (`"-"`, `'GET'`, with \" \' \\ \n \t escapes), bool, and
 *   `duration("1.5s")` (Go duration syntax, compared against `response.duration` in ms);
 * - attribute paths (FilterAttributes keys, e.g. `response.code`), `&&` `||` `!`, parentheses,
 *   `==` `!=` `<` `<=` `>` `>=`, `x in [lit, …]`, and the string methods `.startsWith(s)`,
 *   `.endsWith(s)`, `.contains(s)`, `.matches(re)` with a literal argument.
 *
 * Invariants:
 * - Types are checked at compile time (every attribute has one known type); a mismatch such as
 *   `response.code == "500"` or an unknown attribute is an AmeshError AMESH_CONFIG_INVALID naming
 *   the column and what was expected, so a bad filter is reported where the config is read.
 * - A missing attribute makes any comparison, `in` or method call on it false (so
 *   `response.code >= 400` never matches an L4 entry); a bare missing bool is false.
 * - `accessLogGate` fails open: a filter that throws while evaluating logs the entry.
 *
 * Hand-written: the subset is ~300 lines and the proxies must not pay for a general CEL
 * interpreter per entry; `cel-js` was considered but is not a dependency and interprets the AST
 * on every call instead of compiling it once.
 */
import { AmeshError } from '../errors/amesh-error.js';
import type { AccessLogSettings } from './telemetry-config.js';

export interface FilterAttributes {
  'response.code'?: number;
  'response.flags'?: string;
  /** Milliseconds. */
  'response.duration'?: number;
  'request.method'?: string;
  'request.path'?: string;
  'request.host'?: string;
  'request.protocol'?: string;
  'connection.mtls'?: boolean;
  'connection.error'?: string;
  'source.principal'?: string;
  'destination.port'?: number;
  'destination.service'?: string;
}

export type LogFilter = (a: FilterAttributes) => boolean;

type AttributeName = keyof FilterAttributes;
type ScalarType = 'int' | 'string' | 'bool';

const ATTRIBUTE_TYPES: Readonly<Record<AttributeName, ScalarType>> = {
  'response.code': 'int',
  'response.flags': 'string',
  'response.duration': 'int',
  'request.method': 'string',
  'request.path': 'string',
  'request.host': 'string',
  'request.protocol': 'string',
  'connection.mtls': 'bool',
  'connection.error': 'string',
  'source.principal': 'string',
  'destination.port': 'int',
  'destination.service': 'string',
};

/** The gates without a filter: a caller may compare against them to skip building attributes. */
export const ALWAYS: LogFilter = () => true;
export const NEVER: LogFilter = () => false;

/** Compiles `expression`; throws AmeshError AMESH_CONFIG_INVALID naming the column and what was expected. */
export function compileLogFilter(expression: string): LogFilter {
  const parser = new Parser(expression, tokenize(expression));
  const node = parser.parseExpression();
  parser.expectEnd();
  if (node.type !== 'bool') throw parser.fail(0, `the filter must be a condition (bool), not ${node.type}`);
  const evaluate = node.evaluate;
  return (a) => evaluate(a) === true;
}

/**
 * The access-log gate for `settings`: disabled → never; no filter → always; a filter → the compiled
 * filter, logging the entry if it throws. An invalid filter (the controller already reports it in
 * the Telemetry's status) logs everything and is handed to `onInvalid`.
 */
export function accessLogGate(settings: AccessLogSettings | undefined, onInvalid?: (err: AmeshError) => void): LogFilter {
  if (!settings) return ALWAYS;
  if (!settings.enabled) return NEVER;
  if (settings.filter === undefined || settings.filter.trim() === '') return ALWAYS;
  let filter: LogFilter;
  try {
    filter = compileLogFilter(settings.filter);
  } catch (err) {
    if (err instanceof AmeshError) onInvalid?.(err);
    else throw err;
    return ALWAYS;
  }
  return (a) => {
    try {
      return filter(a);
    } catch {
      return true;
    }
  };
}

// ---- tokens -------------------------------------------------------------------------------

type TokenKind = 'int' | 'string' | 'ident' | 'punct' | 'end';
interface Token {
  kind: TokenKind;
  /** The identifier, punctuation or string value (unescaped); the int's digits. */
  text: string;
  /** 0-based offset into the expression. */
  at: number;
}

const PUNCTUATION = ['&&', '||', '==', '!=', '<=', '>=', '<', '>', '!', '(', ')', '[', ']', ',', '.', '-'];
const ESCAPES: Readonly<Record<string, string>> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'" };

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    const start = i;
    if (c >= '0' && c <= '9') {
      while (i < src.length && src[i]! >= '0' && src[i]! <= '9') i++;
      if (i < src.length && /[A-Za-z_.]/.test(src[i]!)) throw configError(src, i, 'an integer (only int literals are supported)');
      tokens.push({ kind: 'int', text: src.slice(start, i), at: start });
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      while (i < src.length && /[A-Za-z0-9_]/.test(src[i]!)) i++;
      tokens.push({ kind: 'ident', text: src.slice(start, i), at: start });
      continue;
    }
    if (c === '"' || c === "'") {
      let value = '';
      i++;
      for (;;) {
        if (i >= src.length || src[i] === '\n') throw configError(src, start, `a closing ${c} for the string starting here`);
        const ch = src[i]!;
        if (ch === c) break;
        if (ch === '\\') {
          const escaped = ESCAPES[src[i + 1] ?? ''];
          if (escaped === undefined) throw configError(src, i, 'an escape \\n \\t \\r \\\\ \\" or \\\'');
          value += escaped;
          i += 2;
          continue;
        }
        value += ch;
        i++;
      }
      i++;
      tokens.push({ kind: 'string', text: value, at: start });
      continue;
    }
    const punct = PUNCTUATION.find((p) => src.startsWith(p, i));
    if (!punct) throw configError(src, i, `an operator, literal or attribute, not ${JSON.stringify(c)}`);
    tokens.push({ kind: 'punct', text: punct, at: start });
    i += punct.length;
  }
  tokens.push({ kind: 'end', text: '', at: src.length });
  return tokens;
}

// ---- parser + compiler --------------------------------------------------------------------

/** A missing attribute evaluates to undefined. */
type Value = number | string | boolean | undefined;
type ValueType = ScalarType | 'list';

interface Node {
  type: ValueType;
  evaluate: (a: FilterAttributes) => Value;
  /** Set on literals (and list literals' elements), so `in` and methods can precompute. */
  constant?: { value: number | string | boolean } | undefined;
  /** List literals only. */
  items?: { type: ScalarType | undefined; values: ReadonlySet<number | string | boolean> };
  at: number;
}

const RELATIONS = new Set(['==', '!=', '<', '<=', '>', '>=']);
const STRING_METHODS = new Set(['startsWith', 'endsWith', 'contains', 'matches']);

class Parser {
  private index = 0;

  constructor(
    private readonly src: string,
    private readonly tokens: Token[],
  ) {}

  fail(at: number, expected: string): AmeshError {
    return configError(this.src, at, expected);
  }

  expectEnd(): void {
    const t = this.peek();
    if (t.kind !== 'end') throw this.fail(t.at, `the end of the expression or && ||, found ${describe(t)}`);
  }

  /** or := and ('||' and)* */
  parseExpression(): Node {
    let left = this.parseAnd();
    while (this.accept('||')) {
      const right = this.parseAnd();
      const l = this.condition(left, '||');
      const r = this.condition(right, '||');
      left = { type: 'bool', at: left.at, evaluate: (a) => l(a) === true || r(a) === true };
    }
    return left;
  }

  /** and := relation ('&&' relation)* */
  private parseAnd(): Node {
    let left = this.parseRelation();
    while (this.accept('&&')) {
      const right = this.parseRelation();
      const l = this.condition(left, '&&');
      const r = this.condition(right, '&&');
      left = { type: 'bool', at: left.at, evaluate: (a) => l(a) === true && r(a) === true };
    }
    return left;
  }

  /** relation := unary (relop unary | 'in' list)? */
  private parseRelation(): Node {
    const left = this.parseUnary();
    const t = this.peek();
    if (t.kind === 'punct' && RELATIONS.has(t.text)) {
      this.index++;
      const right = this.parseUnary();
      return this.compare(t, left, right);
    }
    if (t.kind === 'ident' && t.text === 'in') {
      this.index++;
      const right = this.parseUnary();
      return this.membership(t, left, right);
    }
    return left;
  }

  /** unary := '!' unary | '-' int | member */
  private parseUnary(): Node {
    const t = this.peek();
    if (this.accept('!')) {
      const operand = this.parseUnary();
      const f = this.condition(operand, '!');
      return { type: 'bool', at: t.at, evaluate: (a) => f(a) !== true };
    }
    if (this.accept('-')) {
      const n = this.peek();
      if (n.kind !== 'int') throw this.fail(n.at, `an integer after '-', found ${describe(n)}`);
      this.index++;
      return literal(-Number(n.text), 'int', t.at);
    }
    return this.parseMember();
  }

  /** member := primary ('.' method '(' literal ')')* */
  private parseMember(): Node {
    let node = this.parsePrimary();
    while (this.isPunct(this.peek(), '.')) {
      const dot = this.next();
      const name = this.next();
      if (name.kind !== 'ident') throw this.fail(name.at, `a method name after '.', found ${describe(name)}`);
      if (!STRING_METHODS.has(name.text)) throw this.fail(name.at, `one of the methods startsWith, endsWith, contains, matches, not '${name.text}'`);
      if (node.type !== 'string') throw this.fail(dot.at, `a string before .${name.text}(), not ${node.type}`);
      this.expect('(', `'(' after ${name.text}`);
      const arg = this.parseExpression();
      this.expect(')', `')' closing ${name.text}(`);
      if (arg.type !== 'string' || !arg.constant) throw this.fail(arg.at, `a string literal as the argument of ${name.text}()`);
      node = stringMethod(name.text, node, String(arg.constant.value), (m) => this.fail(arg.at, m));
    }
    return node;
  }

  /** primary := int | string | true | false | duration("…") | attribute | '(' expression ')' | '[' literals ']' */
  private parsePrimary(): Node {
    const t = this.next();
    if (t.kind === 'int') return literal(Number(t.text), 'int', t.at);
    if (t.kind === 'string') return literal(t.text, 'string', t.at);
    if (t.kind === 'punct' && t.text === '(') {
      const inner = this.parseExpression();
      this.expect(')', "')'");
      return inner;
    }
    if (t.kind === 'punct' && t.text === '[') return this.parseList(t);
    if (t.kind !== 'ident') throw this.fail(t.at, `a literal, attribute, '(' or '[', found ${describe(t)}`);
    if (t.text === 'true' || t.text === 'false') return literal(t.text === 'true', 'bool', t.at);
    if (t.text === 'duration' && this.isPunct(this.peek(), '(')) return this.parseDuration(t);
    return this.parseAttribute(t);
  }

  private parseAttribute(first: Token): Node {
    let path = first.text;
    // An attribute path is greedy over `.ident` segments that are not followed by '(' (a method call).
    while (this.isPunct(this.peek(), '.') && this.tokens[this.index + 1]?.kind === 'ident' && !this.isPunct(this.tokens[this.index + 2], '(')) {
      this.index++;
      path += `.${this.next().text}`;
    }
    if (!(path in ATTRIBUTE_TYPES)) {
      throw this.fail(first.at, `a supported attribute (${Object.keys(ATTRIBUTE_TYPES).join(', ')}), not '${path}'`);
    }
    const name = path as AttributeName;
    return { type: ATTRIBUTE_TYPES[name], at: first.at, evaluate: (a) => a[name] };
  }

  private parseDuration(t: Token): Node {
    this.expect('(', "'(' after duration");
    const arg = this.next();
    if (arg.kind !== 'string') throw this.fail(arg.at, 'a duration string such as "1.5s" or "250ms"');
    this.expect(')', "')' closing duration(");
    const ms = parseDurationMs(arg.text);
    if (ms === undefined) throw this.fail(arg.at, `a duration such as "1.5s", "250ms" or "1m30s", not ${JSON.stringify(arg.text)}`);
    return literal(ms, 'int', t.at);
  }

  private parseList(open: Token): Node {
    const values = new Set<number | string | boolean>();
    let type: ScalarType | undefined;
    if (!this.accept(']')) {
      for (;;) {
        const item = this.parseUnary();
        if (!item.constant || item.type === 'list') throw this.fail(item.at, 'a literal in the list (int, string or bool)');
        if (type !== undefined && item.type !== type) throw this.fail(item.at, `list elements of one type (${type}), not ${item.type}`);
        type = item.type as ScalarType;
        values.add(item.constant.value);
        if (this.accept(']')) break;
        this.expect(',', "',' or ']' in the list");
      }
    }
    return { type: 'list', at: open.at, items: { type, values }, evaluate: () => undefined };
  }

  private compare(op: Token, left: Node, right: Node): Node {
    if (left.type === 'list' || right.type === 'list') throw this.fail(op.at, `scalars on both sides of ${op.text} (use 'in' for lists)`);
    if (left.type !== right.type) throw this.fail(right.at, `${article(left.type)} to compare with ${op.text}, not ${article(right.type)}`);
    if (left.type === 'bool' && op.text !== '==' && op.text !== '!=') throw this.fail(op.at, `== or != between bools, not ${op.text}`);
    const l = left.evaluate;
    const r = right.evaluate;
    const both = (test: (x: number | string | boolean, y: number | string | boolean) => boolean) => (a: FilterAttributes) => {
      const x = l(a);
      if (x === undefined) return false;
      const y = r(a);
      return y !== undefined && test(x, y);
    };
    const evaluate =
      op.text === '=='
        ? both((x, y) => x === y)
        : op.text === '!='
          ? both((x, y) => x !== y)
          : op.text === '<'
            ? both((x, y) => x < y)
            : op.text === '<='
              ? both((x, y) => x <= y)
              : op.text === '>'
                ? both((x, y) => x > y)
                : both((x, y) => x >= y);
    return { type: 'bool', at: left.at, evaluate };
  }

  private membership(op: Token, left: Node, right: Node): Node {
    if (!right.items) throw this.fail(right.at, "a list literal such as [500, 503] after 'in'");
    if (left.type === 'list') throw this.fail(left.at, "a scalar before 'in'");
    if (right.items.type !== undefined && right.items.type !== left.type) {
      throw this.fail(right.at, `a list of ${left.type} values after 'in', not of ${right.items.type}`);
    }
    const values = right.items.values;
    const l = left.evaluate;
    return {
      type: 'bool',
      at: op.at,
      evaluate: (a) => {
        const x = l(a);
        return x !== undefined && values.has(x);
      },
    };
  }

  /** A bool node's evaluator; anything else is a type error at `operator`. */
  private condition(node: Node, operator: string): (a: FilterAttributes) => Value {
    if (node.type !== 'bool') throw this.fail(node.at, `a condition (bool) for ${operator}, not ${article(node.type)}`);
    return node.evaluate;
  }

  private isPunct(t: Token | undefined, punct: string): boolean {
    return t !== undefined && t.kind === 'punct' && t.text === punct;
  }

  private peek(): Token {
    return this.tokens[this.index]!;
  }

  private next(): Token {
    const t = this.tokens[this.index]!;
    if (t.kind !== 'end') this.index++;
    return t;
  }

  private accept(punct: string): boolean {
    if (this.isPunct(this.peek(), punct)) {
      this.index++;
      return true;
    }
    return false;
  }

  private expect(punct: string, what: string): void {
    const t = this.peek();
    if (!this.accept(punct)) throw this.fail(t.at, `${what}, found ${describe(t)}`);
  }
}

function literal(value: number | string | boolean, type: ScalarType, at: number): Node {
  return { type, at, constant: { value }, evaluate: () => value };
}

function stringMethod(name: string, target: Node, arg: string, fail: (message: string) => AmeshError): Node {
  const f = target.evaluate;
  const at = target.at;
  const test = (check: (s: string) => boolean): Node => ({
    type: 'bool',
    at,
    evaluate: (a) => {
      const s = f(a);
      return typeof s === 'string' && check(s);
    },
  });
  if (name === 'startsWith') return test((s) => s.startsWith(arg));
  if (name === 'endsWith') return test((s) => s.endsWith(arg));
  if (name === 'contains') return test((s) => s.includes(arg));
  let re: RegExp;
  try {
    re = new RegExp(arg);
  } catch (err) {
    throw fail(`a valid regular expression for matches(): ${(err as Error).message}`);
  }
  return test((s) => re.test(s));
}

const DURATION_UNITS: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, µs: 0.001, ns: 0.000001 };

/** Go/CEL duration syntax ("1.5s", "1m30s", "250ms") in milliseconds; undefined if malformed. */
function parseDurationMs(text: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/y;
  let total = 0;
  let i = 0;
  if (text === '') return undefined;
  while (i < text.length) {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    i = re.lastIndex;
  }
  return total;
}

function article(type: ValueType): string {
  return type === 'int' ? 'an int' : `a ${type}`;
}

function describe(t: Token): string {
  if (t.kind === 'end') return 'the end of the expression';
  if (t.kind === 'string') return `the string ${JSON.stringify(t.text)}`;
  return `'${t.text}'`;
}

function configError(src: string, at: number, expected: string): AmeshError {
  return new AmeshError('AMESH_CONFIG_INVALID', `access log filter ${JSON.stringify(src)}: at column ${at + 1}: expected ${expected}`, {
    hint: 'Telemetry accessLogging filter.expression supports Istio attributes (response.code, response.flags, request.method, request.path, connection.mtls, …) with == != < <= > >= && || ! in [..] and .startsWith()/.contains()',
  });
}
