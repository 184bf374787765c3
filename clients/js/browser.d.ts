// Types of the browser entry point (src/browser.js); docs/browser.md describes it.
import type {
  LevelName,
  LogClientOptions,
  LogFields,
  RequestContext,
  UserContext,
} from './index.js';

export type { LevelName, LogFields, RequestContext, UserContext } from './index.js';

export declare const LEVELS: readonly ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];

export interface BrowserClientOptions
  extends Omit<LogClientOptions, 'spoolDir' | 'exitTimeout'> {
  /** Records below this level are not kept (default "TRACE"). */
  minLevel?: LevelName;
  /** The IndexedDB database the queue lives in (one per server and service by default). */
  queueName?: string;
}

export interface BrowserClientStats {
  appended: number;
  /** Records held in memory while IndexedDB is missing or refuses. */
  inMemory: number;
  /** Records dropped, by reason (queue_full, memory_full, closed, ...). */
  dropped: Record<string, number>;
  requests: number;
  acknowledged: number;
  duplicates: number;
  deadLettered: number;
  retries: number;
  lastError: string | null;
}

export declare class BrowserLogClient {
  constructor(serverUrl?: string | null, options?: BrowserClientOptions);
  /** Queue one record; it is in IndexedDB once `persisted()` resolves true. Never throws. */
  log(level: LevelName, message: string, metadata?: LogFields): void;
  trace(message: string, metadata?: LogFields): void;
  debug(message: string, metadata?: LogFields): void;
  info(message: string, metadata?: LogFields): void;
  warn(message: string, metadata?: LogFields): void;
  error(message: string, metadata?: LogFields): void;
  fatal(message: string, metadata?: LogFields): void;
  startTimer(): number;
  endTimer(startTime: number, level?: LevelName, message?: string, metadata?: LogFields): void;
  measure<T>(fn: () => T, message?: string | null, level?: LevelName): T;
  errorWithTrace(message: string, error?: unknown, metadata?: LogFields): void;
  /** True once every record logged before the call is written to IndexedDB; false when
   * the records are kept in memory only. */
  persisted(): Promise<boolean>;
  flush(timeoutMs?: number): Promise<boolean>;
  close(timeoutMs?: number): Promise<boolean>;
  stats(): BrowserClientStats;

  static runWithContext<T>(context: RequestContext, fn: () => T): T;
  static getRequestContext(): RequestContext | undefined;
  static runWithUserContext<T>(context: UserContext, fn: () => T): T;
  static getUserContext(): UserContext | undefined;
  static setUserContext(context: UserContext): void;
  static clearUserContext(): void;
}

/** The original browser client's class name. */
export { BrowserLogClient as WebWorkerLogClient };

export declare function createLogClient(
  serverUrl?: string | null,
  options?: BrowserClientOptions,
): BrowserLogClient;
