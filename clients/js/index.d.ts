// Type declarations for log-collector-durable (Node: src/index.js; browsers: src/browser.js).

/** The levels, lowest first; aliases WARNING and CRITICAL and any case are accepted too. */
export type LogLevel = 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'FATAL';
export type LevelName = LogLevel | 'WARNING' | 'CRITICAL' | Lowercase<LogLevel> | 'warning' | 'critical' | (string & {});

/**
 * A record's own fields. Keys that name a column (user_id, trace_id, session_id, path,
 * method, action_type, duration_ms, error_type, stack_trace, function_name, file_path, ...)
 * go to the column; every other key is stored in the record's metadata. Values are never
 * changed in the caller's object; falsy values are kept; sensitive keys are redacted.
 */
export interface LogFields {
  /** false: do not record the calling function and file (default true). */
  autoCaller?: boolean;
  [key: string]: unknown;
}

export interface LogClientOptions {
  /** Service name; else SERVICE_NAME, else the working directory's package.json name. */
  service?: string;
  /** Else ENVIRONMENT or NODE_ENV, else "development". */
  environment?: string;
  /** Else SERVICE_VERSION, else package.json version, else "v0.0.0-dev". */
  serviceVersion?: string;
  /** Else LOG_TYPE, else "BACKEND" (Node) or "FRONTEND" (browser). */
  logType?: string;
  /** Records per request, at most 10,000 (default 1000). */
  batchSize?: number;
  /** Milliseconds between sends of a partial batch (default 1000). */
  flushInterval?: number;
  /** gzip batches of 100 records or 16 KiB and more (default true). */
  enableCompression?: boolean;
  /** Record uncaught exceptions and unhandled rejections (default false, or ENABLE_GLOBAL_ERROR_HANDLER). */
  enableGlobalErrorHandler?: boolean;
  /** Node: the spool directory; else LOG_COLLECTOR_SPOOL_DIR, else ~/.cache/log-collector/<service>/. */
  spoolDir?: string;
  /** Sent as `Authorization: Bearer <apiKey>`; else LOG_COLLECTOR_API_KEY. */
  apiKey?: string;
  /** Milliseconds one request may take (default 5000). */
  timeout?: number;
  /** Node: bytes the spool may hold before the oldest records are dropped and counted (default 256 MiB). */
  maxSpoolBytes?: number;
  /** Node: what a full spool drops: its oldest records (default) or the record being logged; else LOG_COLLECTOR_SPOOL_FULL_POLICY. */
  spoolFullPolicy?: 'drop_oldest' | 'drop_newest';
  /** Node: milliseconds after which an undelivered record is dropped and counted (default none; at least 60000). */
  maxRecordAge?: number | null;
  /** Node: milliseconds the flush at `beforeExit` may take (default 2000). */
  exitTimeout?: number;
  /** Milliseconds the backoff between retries grows to at most (default 30000). */
  maxBackoff?: number;
  /** gzip a batch of at least this many records (default 100). */
  gzipMinRecords?: number;
  /** gzip a batch of at least this many characters of JSON (default 16384). */
  gzipMinBytes?: number;
}

/** Request context: path, method, ip, trace_id, ... (set by the Express middleware). */
export type RequestContext = Record<string, unknown>;
/** User context: user_id, session_id, trace_id, ... */
export type UserContext = Record<string, unknown>;

export interface LogClientStats {
  appended: number;
  requests: number;
  acknowledged: number;
  duplicates: number;
  deadLettered: number;
  retries: number;
  lastError: string | null;
  /** Records dropped, by reason: spool_full, record_too_large, memory_full, closed. */
  dropped: Record<string, number>;
  pending: number;
  pendingBytes: number;
  /** Orphaned spools of dead processes being drained. */
  adopted: number;
  /** The spool file, or null when records are kept in memory. */
  spoolPath: string | null;
}

export declare class WorkerThreadsLogClient {
  constructor(serverUrl?: string | null, options?: LogClientOptions);
  readonly serverUrl: string;
  readonly service: string | null;
  readonly environment: string;
  readonly serviceVersion: string;
  readonly logType: string;
  /** The spool file this client writes (Node), or null. */
  readonly spoolPath: string | null;

  /** Log one record; in Node it is in the spool (durable) when this returns. Never throws. */
  log(level: LevelName, message: string, metadata?: LogFields): void;
  trace(message: string, metadata?: LogFields): void;
  debug(message: string, metadata?: LogFields): void;
  info(message: string, metadata?: LogFields): void;
  warn(message: string, metadata?: LogFields): void;
  error(message: string, metadata?: LogFields): void;
  fatal(message: string, metadata?: LogFields): void;

  /** A start time for endTimer (ms since the epoch). */
  startTimer(): number;
  /** Log `message` with duration_ms since `startTime`. */
  endTimer(startTime: number, level?: LevelName, message?: string, metadata?: LogFields): void;
  /** Run `fn`, log its duration (and its error, rethrown); a promise is timed until it settles. */
  measure<T>(fn: () => T, message?: string | null, level?: LevelName): T;
  /** Log an ERROR with the error's stack_trace and error_type. */
  errorWithTrace(message: string, error?: unknown, metadata?: LogFields): void;

  /** True once everything logged before the call is acknowledged (or dead-lettered); false after timeoutMs (default 30000). */
  flush(timeoutMs?: number): Promise<boolean>;
  /** Flush for at most timeoutMs (default 5000), then stop; what is left stays for the next start. */
  close(timeoutMs?: number): Promise<boolean>;
  stats(): LogClientStats;

  static runWithContext<T>(context: RequestContext, fn: () => T): T;
  static getRequestContext(): RequestContext | undefined;
  /** Run fn with `context` merged over the user context in effect. */
  static runWithUserContext<T>(context: UserContext, fn: () => T): T;
  static getUserContext(): UserContext | undefined;
  /** Set the user context for the rest of the current execution; visible at once. */
  static setUserContext(context: UserContext): void;
  static clearUserContext(): void;
}

/** Create a client: Node's durable spool client, or in a browser the IndexedDB-backed one. */
export declare function createLogClient(serverUrl?: string | null, options?: LogClientOptions): WorkerThreadsLogClient;

export declare function runWithContext<T>(context: RequestContext, fn: () => T): T;
export declare function getRequestContext(): RequestContext | undefined;
export declare function runWithUserContext<T>(context: UserContext, fn: () => T): T;
export declare function getUserContext(): UserContext | undefined;
export declare function setUserContext(context: UserContext): void;
export declare function clearUserContext(): void;

declare const _default: { createLogClient: typeof createLogClient; WorkerThreadsLogClient: typeof WorkerThreadsLogClient };
export default _default;
