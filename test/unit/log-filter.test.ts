import { describe, expect, it } from 'vitest';
import { isAmeshError } from '../../src/errors/amesh-error.js';
import { accessLogGate, compileLogFilter, type FilterAttributes } from '../../src/telemetry/log-filter.js';

const ok: FilterAttributes = {
  'response.code': 200,
  'response.flags': '-',
  'response.duration': 12,
  'request.method': 'GET',
  'request.path': '/api/v1/items',
  'request.host': 'reviews.default.svc.cluster.local',
  'request.protocol': 'http',
  'connection.mtls': true,
  'source.principal': 'spiffe://cluster.local/ns/default/sa/productpage',
  'destination.port': 9080,
  'destination.service': 'reviews.default.svc.cluster.local',
};
const denied: FilterAttributes = { ...ok, 'response.code': 403, 'response.flags': 'RBAC', 'request.method': 'POST', 'request.path': '/admin' };
const unavailable: FilterAttributes = { ...ok, 'response.code': 503, 'response.flags': 'UH', 'response.duration': 2500 };
const l4: FilterAttributes = { 'connection.mtls': true, 'source.principal': 'spiffe://cluster.local/ns/a/sa/b', 'destination.port': 5432 };
const plain: FilterAttributes = { ...ok, 'connection.mtls': false };

describe('compileLogFilter: evaluation', () => {
  it.each<[string, FilterAttributes, boolean]>([
    ['response.code >= 400', ok, false],
    ['response.code >= 400', denied, true],
    ['response.code >= 400', l4, false],
    ['!(response.code >= 400)', l4, true],
    ['response.code >= 400 || response.flags != "-"', ok, false],
    ['response.code >= 400 || response.flags != "-"', { ...ok, 'response.flags': 'URX' }, true],
    ['response.code >= 400 || response.flags != "-"', l4, false],
    ['connection.mtls && request.method == "GET"', ok, true],
    ['connection.mtls && request.method == "GET"', plain, false],
    ['connection.mtls && request.method == "GET"', denied, false],
    ['!connection.mtls', plain, true],
    ['!connection.mtls', ok, false],
    ['connection.mtls == false', plain, true],
    ['request.path.startsWith("/api")', ok, true],
    ["request.path.startsWith('/api')", denied, false],
    ['request.path.startsWith("/api")', l4, false],
    ['request.path.endsWith("items")', ok, true],
    ['request.host.contains("reviews")', ok, true],
    ['request.path.matches("^/api/v[0-9]+/")', ok, true],
    ['request.path.matches("^/api/v[0-9]+/")', denied, false],
    ['response.code in [500, 503]', unavailable, true],
    ['response.code in [500, 503]', ok, false],
    ['response.code in [500, 503]', l4, false],
    ['request.method in ["POST", "PUT"]', denied, true],
    ['!(response.code in [200, 204])', denied, true],
    ['!(response.code < 400 && response.flags == "-")', ok, false],
    ['!(response.code < 400 && response.flags == "-")', unavailable, true],
    ['response.code >= 400 && response.code < 500 || response.flags == "UH"', unavailable, true],
    ['response.code >= 400 && response.code < 500 || response.flags == "UH"', denied, true],
    ['response.code >= 400 && (response.code < 500 || response.flags == "RBAC")', unavailable, false],
    ['response.duration > duration("1s")', unavailable, true],
    ['response.duration > duration("1s")', ok, false],
    ['response.duration >= 12', ok, true],
    ['destination.port == 5432', l4, true],
    ['destination.port != -1', l4, true],
    ['source.principal == "spiffe://cluster.local/ns/a/sa/b"', l4, true],
    ['response.flags != "-"', l4, false],
    ['true', l4, true],
    ['false || (true && !false)', l4, true],
    ['request.path == "a\\"b"', { 'request.path': 'a"b' }, true],
    ['  response.code\n  >= 500  ', unavailable, true],
  ])('%s on %o → %s', (expression, attributes, expected) => {
    expect(compileLogFilter(expression)(attributes)).toBe(expected);
  });
});

describe('compileLogFilter: errors name the column and what was expected', () => {
  it.each<[string, RegExp]>([
    ['', /column 1: expected a literal, attribute/],
    ['response.code >=', /column 17: expected a literal, attribute.*found the end/],
    ['response.code >= 400 ||', /column 24: expected a literal/],
    ['response.cod >= 400', /column 1: expected a supported attribute .*not 'response.cod'/],
    ['request.headers["x"] == "y"', /not 'request.headers'/],
    ['response.code == "500"', /column 18: expected an int to compare with ==, not a string/],
    ['response.code', /column 1: expected the filter must be a condition \(bool\), not int/],
    ['response.code && true', /column 1: expected a condition \(bool\) for &&, not an int/],
    ['(response.code >= 400', /column 22: expected '\)', found the end/],
    ['response.code in 500', /column 18: expected a list literal/],
    ['response.code in ["a"]', /a list of int values after 'in', not of string/],
    ['response.code in [1, "a"]', /list elements of one type \(int\)/],
    ['request.path.startWith("/")', /one of the methods startsWith, endsWith, contains, matches, not 'startWith'/],
    ['response.code.startsWith("4")', /a string before .startsWith\(\), not int/],
    ['request.path.startsWith(request.host)', /a string literal as the argument/],
    ['request.path.matches("(")', /a valid regular expression/],
    ['request.method == "GET', /column 19: expected a closing " for the string/],
    ['request.method = "GET"', /column 16: expected an operator, literal or attribute, not "="/],
    ['response.code >= 400 response.flags', /column 22: expected the end of the expression/],
    ['response.duration > duration("soon")', /expected a duration such as/],
    ['response.code >= 4.5', /only int literals/],
    ['connection.mtls < true', /== or != between bools/],
  ])('%s → %s', (expression, message) => {
    let thrown: unknown;
    try {
      compileLogFilter(expression);
    } catch (err) {
      thrown = err;
    }
    expect(isAmeshError(thrown, 'AMESH_CONFIG_INVALID')).toBe(true);
    expect((thrown as Error).message).toMatch(message);
  });
});

describe('accessLogGate', () => {
  it('no settings or no filter logs everything; disabled logs nothing', () => {
    expect(accessLogGate(undefined)(l4)).toBe(true);
    expect(accessLogGate({ enabled: true })(l4)).toBe(true);
    expect(accessLogGate({ enabled: false })(ok)).toBe(false);
    expect(accessLogGate({ enabled: false, filter: 'true' })(ok)).toBe(false);
  });
  it('a filter decides', () => {
    const gate = accessLogGate({ enabled: true, filter: 'response.code >= 400' });
    expect(gate(ok)).toBe(false);
    expect(gate(denied)).toBe(true);
  });
  it('an invalid filter logs everything and is reported', () => {
    const reported: string[] = [];
    const gate = accessLogGate({ enabled: true, filter: 'response.code >=' }, (err) => reported.push(err.code));
    expect(gate(ok)).toBe(true);
    expect(reported).toEqual(['AMESH_CONFIG_INVALID']);
  });
  it('a filter that throws while evaluating logs the entry (fail open)', () => {
    const gate = accessLogGate({ enabled: true, filter: 'request.path.startsWith("/x")' });
    const hostile = { get 'request.path'(): string { throw new Error('boom'); } } as unknown as FilterAttributes;
    expect(gate(hostile)).toBe(true);
  });
});
