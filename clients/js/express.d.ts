// Type declarations for log-collector-durable/express (src/express.js).

import type { WorkerThreadsLogClient } from './index.js';

export interface MiddlewareOptions {
  /** Exact paths left unlogged (health checks): no context, no records, no trace id header. */
  excludePaths?: string[];
  /** Log "Request received" (default true). */
  logReceived?: boolean;
  /** Log "Request completed" with status_code and duration_ms (default true). */
  logCompleted?: boolean;
  /** Read from the request and echoed in the response (default "x-trace-id"). */
  traceHeader?: string;
  /** The request header whose value becomes user_id (default "x-user-id"). */
  userIdHeader?: string;
}

type Next = (error?: unknown) => void;

/** Request logging: context, "Request received" / "Request completed", trace id echoed. */
export declare function logCollectorMiddleware(
  client: WorkerThreadsLogClient,
  options?: MiddlewareOptions,
): (req: any, res: any, next: Next) => void;

/** Logs an error that reached Express with its stack trace, then passes it on. */
export declare function logCollectorErrorHandler(
  client: WorkerThreadsLogClient,
): (error: unknown, req: any, res: any, next: Next) => void;

/** The 32-hex trace id of a valid W3C traceparent header, else null. */
export declare function traceIdFromTraceparent(value: string | null | undefined): string | null;

/** traceparent's trace id, else a usable x-trace-id, else a new 32-hex id. */
export declare function pickTraceId(traceparent?: string, traceHeader?: string): string;
