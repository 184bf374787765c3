/**
 * Express middleware for the Node client, doing what the Python middlewares do
 * (log_collector/integrations/_common.py): each request runs in a request context
 * (path, method, ip, trace_id, user_id from `x-user-id`), is framed by "Request received"
 * and "Request completed" (status_code, duration_ms), echoes its trace id in the response
 * header `x-trace-id`, and an error that reaches Express is logged with its stack.
 *
 *   import { logCollectorMiddleware, logCollectorErrorHandler } from 'log-collector-durable/express';
 *   app.use(logCollectorMiddleware(client));
 *   // ...routes...
 *   app.use(logCollectorErrorHandler(client));
 *
 * It imports nothing from Express: any framework with Express's (req, res, next) shape works.
 */

import crypto from 'node:crypto';
import { runWithContext } from './context.js';

const TRACE_HEADER = 'x-trace-id';
const USER_ID_HEADER = 'x-user-id';
// W3C Trace Context, section 3.2 (https://www.w3.org/TR/trace-context/#traceparent-header):
// version "-" trace-id "-" parent-id "-" trace-flags, lower-case hex. A version above 00
// may append fields; version ff is invalid, and so is an all-zero trace id or parent id.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
// An x-trace-id is taken as sent when it is visible ASCII and fits the store's trace_id
// column (100 characters); anything else gets a new id.
const TRACE_ID = /^[\x21-\x7e]{1,100}$/;
// The store's column limits: a longer value would get the request's records rejected.
const PATH_LIMIT = 500;
const USER_ID_LIMIT = 255;
// The store's http_method enum; another method goes into metadata as http_method.
const METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS']);
const LOGGED = Symbol('log-collector.logged');

/**
 * The 32-hex trace id of a valid `traceparent` header, else null.
 *
 * @param {string|undefined|null} value
 * @returns {string|null}
 */
export function traceIdFromTraceparent(value) {
  if (typeof value !== 'string') return null;
  const match = TRACEPARENT.exec(value.trim());
  if (!match) return null;
  const [, version, traceId, parentId, , rest] = match;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null;
  if (/^0+$/.test(traceId) || /^0+$/.test(parentId)) return null;
  return traceId;
}

/**
 * `traceparent`'s trace id, else a usable `x-trace-id`, else a new 32-hex id.
 *
 * @param {string|undefined} traceparent
 * @param {string|undefined} traceHeader
 * @returns {string}
 */
export function pickTraceId(traceparent, traceHeader) {
  const found = traceIdFromTraceparent(traceparent);
  if (found) return found;
  if (typeof traceHeader === 'string' && TRACE_ID.test(traceHeader.trim())) return traceHeader.trim();
  return crypto.randomBytes(16).toString('hex');
}

function header(req, name) {
  const value = req.headers?.[name];
  return Array.isArray(value) ? value[0] : value;
}

function requestPath(req) {
  const url = req.originalUrl ?? req.url ?? '/';
  const end = url.search(/[?#]/);
  return (end === -1 ? url : url.slice(0, end)).slice(0, PATH_LIMIT);
}

/**
 * @typedef {object} MiddlewareOptions
 * @property {string[]} [excludePaths] exact paths left unlogged (health checks): no
 *   context, no request records, no trace id header
 * @property {boolean} [logReceived] log "Request received" (default true)
 * @property {boolean} [logCompleted] log "Request completed" (default true)
 * @property {string} [traceHeader] read from the request and echoed (default x-trace-id)
 * @property {string} [userIdHeader] default x-user-id
 */

/**
 * The request-logging middleware.
 *
 * @param {import('./node-client.js').WorkerThreadsLogClient} client
 * @param {MiddlewareOptions} [options]
 * @returns {(req: any, res: any, next: (error?: unknown) => void) => void}
 */
export function logCollectorMiddleware(client, options = {}) {
  const {
    excludePaths = [],
    logReceived = true,
    logCompleted = true,
    traceHeader = TRACE_HEADER,
    userIdHeader = USER_ID_HEADER,
  } = options;
  const excluded = new Set(excludePaths);
  const traceName = traceHeader.toLowerCase();
  const userName = userIdHeader.toLowerCase();
  return function logCollectorRequest(req, res, next) {
    const path = requestPath(req);
    if (excluded.has(path)) {
      next();
      return;
    }
    const traceId = pickTraceId(header(req, 'traceparent'), header(req, traceName));
    const context = { path };
    const method = String(req.method ?? '').toUpperCase();
    context[METHODS.has(method) ? 'method' : 'http_method'] = method;
    const ip = req.ip ?? req.socket?.remoteAddress;
    if (ip) context.ip = ip;
    context.trace_id = traceId;
    const userId = header(req, userName);
    if (userId) context.user_id = String(userId).slice(0, USER_ID_LIMIT);
    res.setHeader(traceName, traceId);
    const started = performance.now();
    let finished = false;
    const complete = (status) => {
      if (finished) return;
      finished = true;
      if (!logCompleted) return;
      runWithContext(context, () => {
        client.log(completedLevel(status), 'Request completed', {
          status_code: status,
          duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
          autoCaller: false,
        });
      });
    };
    res.on('finish', () => complete(res.statusCode));
    // A client that goes away before the answer: no status to report.
    res.on('close', () => complete(res.writableFinished ? res.statusCode : null));
    runWithContext(context, () => {
      if (logReceived) client.info('Request received', { autoCaller: false });
      next();
    });
  };
}

function completedLevel(status) {
  if (status === null || status === undefined) return 'WARN';
  return status >= 500 ? 'ERROR' : 'INFO';
}

/**
 * The error handler: logs an error that reached Express with its stack trace, in the
 * request's context, then passes it on (Express answers it as it would without this).
 * Mount it after the routes.
 *
 * @param {import('./node-client.js').WorkerThreadsLogClient} client
 * @returns {(error: unknown, req: any, res: any, next: (error?: unknown) => void) => void}
 */
export function logCollectorErrorHandler(client) {
  return function logCollectorError(error, req, res, next) {
    if (error !== null && typeof error === 'object' && error[LOGGED]) {
      next(error);
      return;
    }
    try {
      if (error !== null && typeof error === 'object') error[LOGGED] = true;
    } catch {
      // a frozen error is logged again if it passes twice
    }
    // Express calls error handlers in the request's async context, so the record carries
    // its path, method and trace_id. The stack trace says where the error came from.
    client.errorWithTrace('Unhandled exception', error, { autoCaller: false });
    next(error);
  };
}
