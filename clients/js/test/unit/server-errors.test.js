// The 500 rules (src/server-errors.js) on a stand-in server: which parts are split, held or
// dead-lettered, and how many requests that costs. The senders' own tests run them against
// the real server (test/node/delivery.test.js, tests/ui/test_js_client.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { SPLIT_AFTER_500, ServerErrors } from '../../src/server-errors.js';

const FAILED = { kind: 'retry', status: 500, detail: 'HTTP 500' };

/** A sender's deliver over `fails(rows)`: stored, or answered 500 (post's retries left out). */
function sender(fails) {
  const errors = new ServerErrors();
  const stored = [];
  const dead = [];
  let requests = 0;
  const deliver = async (rows, mark) => {
    requests += 1;
    if (!fails(rows)) {
      stored.push(...rows);
      errors.acks += 1;
      return null;
    }
    return errors.after500(rows, FAILED, mark, deliver, (row, reason) => dead.push([row, reason]));
  };
  return { errors, stored, dead, deliver, requests: () => requests };
}

const batch = Array.from({ length: 16 }, (_, id) => ({ id }));

test('a record the server fails on alone, while it stores the others, is dead-lettered', async () => {
  const s = sender((rows) => rows.some((row) => row.id === 11));
  assert.equal(await s.deliver(batch, s.errors.acks), null);
  const held = await s.errors.retryHeld(s.deliver);

  assert.equal(held, null);
  assert.deepEqual(s.dead.map(([row]) => row.id), [11]);
  assert.match(s.dead[0][1], new RegExp(`answered 500 ${SPLIT_AFTER_500} times in a row for this record alone`));
  assert.deepEqual(s.stored.map((row) => row.id).sort((a, b) => a - b), batch.map((row) => row.id).filter((id) => id !== 11));
});

test('a lone record found before anything was stored is held, then dead-lettered once others are', async () => {
  const s = sender((rows) => rows.some((row) => row.id === 0));
  assert.equal(await s.deliver(batch, s.errors.acks), null);
  assert.deepEqual(s.dead, [], 'no proof yet when the first half ends in record 0 alone');
  assert.equal(await s.errors.retryHeld(s.deliver), null);

  assert.deepEqual(s.dead.map(([row]) => row.id), [0]);
  assert.equal(s.stored.length, 15);
});

test('a server failing every part holds them whole, dead-letters nothing and asks for the batch again', async () => {
  const s = sender(() => true);
  assert.equal(await s.deliver(batch, s.errors.acks), null);
  const again = await s.errors.retryHeld(s.deliver);

  assert.equal(again, FAILED);
  assert.deepEqual([s.dead, s.stored], [[], []]);
  // Down to the first record alone (one part per halving), then the rest held whole.
  assert.ok(s.requests() <= 2 * Math.log2(batch.length) + 1, `${s.requests()} requests`);
});

test('post sends again while answered 500, three times at most, and stops on another answer', async () => {
  const errors = new ServerErrors();
  const answers = [FAILED, FAILED, FAILED, FAILED];
  const pauses = [];
  const last = await errors.post(async () => answers.shift(), async (attempt) => { pauses.push(attempt); }, () => false);
  assert.equal(last, FAILED);
  assert.deepEqual(pauses, [1, 2]);
  assert.equal(answers.length, 1);

  const replies = [FAILED, { kind: 'retry', status: 502 }];
  const other = await errors.post(async () => replies.shift(), async () => {}, () => false);
  assert.equal(other.status, 502);
});
