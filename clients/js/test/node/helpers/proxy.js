/**
 * A scriptable stand-in in front of the real server, speaking the same wire (POST /logs,
 * gzip, the acknowledgement JSON), for the faults the real server cannot produce on demand:
 * 500 (scripted, or for a batch holding a record it fails on), 429 with Retry-After, 413 for
 * too many records, 400 for a poisoned batch, and an ack
 * lost on the wire (forwarded and stored, then the connection cut without an answer).
 * Like tests/receiver.py does for the Python client. Everything else is forwarded.
 */

import http from 'node:http';
import zlib from 'node:zlib';

export class FaultProxy {
  /** @param {string} upstream the real server's URL */
  constructor(upstream) {
    this.upstream = upstream;
    /** Scripted answers, used in order, one per request. */
    this.script = [];
    /** 413 when a batch holds more records than this. */
    this.maxRecords = null;
    /** 400 for a batch holding a record for which this returns true. */
    this.poisoned = null;
    /** 500 for a batch holding a record for which this returns true (a record the server fails on). */
    this.crashing = null;
    /** Every POST /logs seen: {at, headers, gzip, count, eventIds, answered}. */
    this.requests = [];
    this.server = http.createServer((req, res) => this._handle(req, res));
  }

  get url() {
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  async stop() {
    this.server.closeAllConnections?.();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /**
   * Answer the next requests with these, in order.
   *
   * @param {...({status: number, headers?: object, body?: string}|'drop-after-store')} answers
   */
  answerNext(...answers) {
    this.script.push(...answers);
    return this;
  }

  /** Event ids seen in requests, with how many times each was sent. */
  sentEventIds() {
    const counts = new Map();
    for (const request of this.requests) {
      for (const id of request.eventIds) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  }

  async _handle(req, res) {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const raw = Buffer.concat(chunks);
    const gzip = req.headers['content-encoding'] === 'gzip';
    let records = [];
    try {
      records = JSON.parse((gzip ? zlib.gunzipSync(raw) : raw).toString('utf8')).logs ?? [];
    } catch {
      records = [];
    }
    const info = {
      at: Date.now(),
      headers: { ...req.headers },
      gzip,
      count: records.length,
      eventIds: records.map((record) => record?.event_id),
      records,
      answered: null,
    };
    this.requests.push(info);
    const scripted = this.script.shift();
    if (scripted && scripted !== 'drop-after-store') {
      info.answered = scripted.status;
      res.writeHead(scripted.status, { 'content-type': 'application/json', ...(scripted.headers ?? {}) });
      res.end(scripted.body ?? JSON.stringify({ detail: `scripted ${scripted.status}` }));
      return;
    }
    if (this.maxRecords !== null && records.length > this.maxRecords) {
      info.answered = 413;
      res.writeHead(413, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ detail: `more than ${this.maxRecords} records` }));
      return;
    }
    if (this.crashing && records.some((record) => this.crashing(record))) {
      info.answered = 500;
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('Internal Server Error');
      return;
    }
    if (this.poisoned && records.some((record) => this.poisoned(record))) {
      info.answered = 400;
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ detail: 'poisoned batch' }));
      return;
    }
    const answer = await this._forward(raw, req.headers);
    if (scripted === 'drop-after-store') {
      info.answered = 'dropped';
      req.socket.destroy();
      return;
    }
    info.answered = answer.status;
    res.writeHead(answer.status, { 'content-type': answer.type ?? 'application/json' });
    res.end(answer.body);
  }

  async _forward(raw, headers) {
    const forwarded = { 'content-type': 'application/json' };
    if (headers['content-encoding']) forwarded['content-encoding'] = headers['content-encoding'];
    if (headers.authorization) forwarded.authorization = headers.authorization;
    const answer = await fetch(`${this.upstream}/logs`, { method: 'POST', headers: forwarded, body: raw });
    return { status: answer.status, type: answer.headers.get('content-type'), body: Buffer.from(await answer.arrayBuffer()) };
  }
}
