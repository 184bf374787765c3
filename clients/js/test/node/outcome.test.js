/**
 * outcome.js: what each answer to a POST means for its batch (mirrors the Python client's
 * transport.classify), Retry-After parsing and the backoff.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classify, parseRetryAfter, backoffMs, shortReason, MAX_RETRY_AFTER_MS } from '../../src/outcome.js';

const ACK = JSON.stringify({ status: 'ok', count: 3, accepted: 2, duplicates: 1, rejected: [{ index: 2, reason: 'bad' }] });

test('2xx with the acknowledgement JSON is an ack with its rejected indexes and duplicates', () => {
  const outcome = classify(200, {}, ACK, { count: 3 });
  assert.equal(outcome.kind, 'ack');
  assert.deepEqual(outcome.rejected, [{ index: 2, reason: 'bad' }]);
  assert.equal(outcome.duplicates, 1);
});

test('the original server\'s {"status":"ok","count":N} acknowledges everything', () => {
  assert.deepEqual(classify(200, {}, '{"status":"ok","count":2}', { count: 2 }).rejected, []);
});

test('rejected indexes outside the batch, repeated or malformed are ignored', () => {
  const body = JSON.stringify({ status: 'ok', rejected: [{ index: 5 }, { index: -1 }, { index: 0 }, { index: 0 }, 'x', { index: '1' }] });
  assert.deepEqual(classify(200, {}, body, { count: 2 }).rejected, [{ index: 0, reason: 'rejected by the server' }]);
});

test('a 2xx that is not the acknowledgement, and a 3xx, are bad_ack', () => {
  assert.equal(classify(200, { 'content-type': 'text/html' }, '<html>login</html>').kind, 'bad_ack');
  assert.equal(classify(204, {}, '').kind, 'bad_ack');
  assert.equal(classify(200, {}, '{"status":"error"}').kind, 'bad_ack');
  const redirect = classify(302, { Location: 'https://elsewhere/' }, '');
  assert.equal(redirect.kind, 'bad_ack');
  assert.match(redirect.detail, /https:\/\/elsewhere\//);
});

test('each error status maps to its kind', () => {
  const kinds = Object.fromEntries([400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504]
    .map((status) => [status, classify(status, {}, '').kind]));
  assert.deepEqual(kinds, {
    400: 'bisect', 401: 'auth', 403: 'auth', 404: 'retry', 408: 'retry', 413: 'split', 422: 'bisect',
    429: 'retry_after', 500: 'retry', 502: 'retry', 503: 'retry_after', 504: 'retry',
  });
});

test('no answer at all is a retry that says why', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  assert.deepEqual(classify(null, null, '', { error: refused }), { kind: 'retry', status: null, detail: 'connection refused' });
  assert.equal(shortReason(new Error('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) })), 'connection reset');
});

test('Retry-After is read as seconds or an HTTP date, from a Headers object or a plain one', () => {
  const headers = new Headers({ 'Retry-After': '2' });
  assert.equal(classify(429, headers, '').retryAfterMs, 2000);
  assert.equal(classify(503, { 'retry-after': '0.5' }, '').retryAfterMs, 500);
  assert.equal(classify(429, {}, '').retryAfterMs, undefined);
  const now = () => Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now), 30_000);
  assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:27:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon'), null);
  assert.equal(parseRetryAfter('86400'), MAX_RETRY_AFTER_MS);
});

test('backoff grows exponentially to its cap, with full jitter', () => {
  assert.equal(backoffMs(0, { baseMs: 500, capMs: 30_000 }, () => 0.999999) < 500, true);
  assert.equal(backoffMs(3, { baseMs: 500, capMs: 30_000 }, () => 0.5), 2000);
  assert.equal(backoffMs(20, { baseMs: 500, capMs: 30_000 }, () => 0.5), 15_000);
  assert.equal(backoffMs(5, { baseMs: 500, capMs: 30_000 }, () => 0), 0);
});
