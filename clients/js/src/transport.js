/**
 * HTTP for the Node sender: one POST of one encoded batch, answered with an `Outcome`
 * (outcome.js). Sockets are unref'd, so a request in flight never keeps a finished script
 * alive on its own (the flush at `beforeExit` holds a timer of its own while it waits).
 */

import http from 'node:http';
import https from 'node:https';
import zlib from 'node:zlib';
import { promisify } from 'node:util';
import { classify } from './outcome.js';

const gzip = promisify(zlib.gzip);
// Level 1: on a small host the CPU matters more than bytes on a LAN, and log text still
// shrinks several-fold at this level.
const GZIP_LEVEL = 1;
// What is read of an answer's body: the acknowledgement is small; an error page is cut.
const MAX_ANSWER_BYTES = 256 * 1024;
const VERSION = '0.1.0';

/**
 * `{"logs":[...]}` from rows that are already JSON text (joined, never re-parsed),
 * gzip'd when `compress`.
 *
 * @param {string[]} bodies
 * @param {boolean} compress
 * @returns {Promise<Buffer>}
 */
export async function encodeBatch(bodies, compress) {
  const json = Buffer.from(`{"logs":[${bodies.join(',')}]}`, 'utf8');
  if (!compress) return json;
  // zlib's asynchronous form runs on libuv's thread pool, off the event loop.
  return gzip(json, { level: GZIP_LEVEL });
}

/**
 * POSTs batches to `{serverUrl}/logs` through one kept-alive connection.
 */
export class HttpTransport {
  /**
   * @param {{serverUrl: string, timeout: number, apiKey?: string|null}} options
   */
  constructor({ serverUrl, timeout, apiKey = null }) {
    this.url = `${serverUrl}/logs`;
    this._target = new URL(this.url);
    this._module = this._target.protocol === 'https:' ? https : http;
    this._agent = new this._module.Agent({ keepAlive: true, maxSockets: 1 });
    this._timeout = timeout;
    this._headers = {
      'Content-Type': 'application/json',
      'User-Agent': `log-collector-durable-node/${VERSION}`,
    };
    if (apiKey) this._headers.Authorization = `Bearer ${apiKey}`;
    this._inFlight = new Set();
  }

  /**
   * Send one encoded batch of `count` records; never rejects: a failure is an outcome.
   *
   * @param {Buffer} body
   * @param {{gzipped: boolean, count: number}} what
   * @returns {Promise<import('./outcome.js').Outcome>}
   */
  send(body, { gzipped, count }) {
    return new Promise((resolve) => {
      const headers = { ...this._headers, 'Content-Length': String(body.length) };
      if (gzipped) headers['Content-Encoding'] = 'gzip';
      let settled = false;
      const finish = (outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(overall);
        this._inFlight.delete(request);
        resolve(outcome);
      };
      const request = this._module.request(this._target, {
        method: 'POST',
        agent: this._agent,
        headers,
        timeout: this._timeout,
      });
      this._inFlight.add(request);
      // The socket timeout covers a silent peer; this covers one that trickles its answer.
      const overall = setTimeout(() => request.destroy(timeoutError()), this._timeout * 2);
      overall.unref();
      request.on('socket', (socket) => socket.unref());
      request.on('timeout', () => request.destroy(timeoutError()));
      request.on('error', (error) => finish(classify(null, null, '', { error, count })));
      request.on('response', (response) => {
        const chunks = [];
        let size = 0;
        response.on('data', (chunk) => {
          if (size < MAX_ANSWER_BYTES) chunks.push(chunk);
          size += chunk.length;
        });
        response.on('error', (error) => finish(classify(null, null, '', { error, count })));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          finish(classify(response.statusCode, response.headers, text, { count }));
        });
      });
      request.end(body);
    });
  }

  /** Abort the requests in flight and drop pooled connections. */
  close() {
    for (const request of this._inFlight) request.destroy(new Error('client closed'));
    this._inFlight.clear();
    this._agent.destroy();
  }
}

function timeoutError() {
  const error = new Error('timed out');
  error.code = 'ETIMEDOUT';
  return error;
}
