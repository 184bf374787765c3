/**
 * The Node client and the process: the clients alive in it, the flush when the event loop
 * runs dry, the spool files closed at exit, and the watch for a crash.
 *
 * No SIGINT/SIGTERM handler: Ctrl+C and a kill end the process as they would without the
 * client, and what was logged is in the spool for the next start. 'beforeExit' comes when
 * the event loop has nothing left to do: the one moment a flush can run without keeping a
 * finished program alive. Registered once per process, with the first client.
 */

/** The clients of this process that are not closed. */
export const live = new Set();
let hooked = false;

/**
 * Count `client` among the live ones; it gets `_flushAtExit()` at 'beforeExit' and
 * `_shutdown()` at 'exit'.
 *
 * @param {{_flushAtExit(): void, _shutdown(): void}} client
 */
export function track(client) {
  live.add(client);
  if (hooked) return;
  hooked = true;
  process.on('beforeExit', () => {
    for (const each of live) each._flushAtExit();
  });
  process.on('exit', () => {
    for (const each of [...live]) each._shutdown();
  });
}

/** @param {object} client no longer live */
export function untrack(client) {
  live.delete(client);
}

/**
 * Call `onCrash(error, origin)` when an exception goes uncaught, without changing what
 * Node does next (print it and exit with code 1): 'uncaughtExceptionMonitor' observes, while
 * an 'uncaughtException' or 'unhandledRejection' listener would keep a crashed process
 * running. An unhandled rejection reaches it too (origin 'unhandledRejection') under Node's
 * default --unhandled-rejections=throw.
 *
 * @param {(error: unknown, origin: string) => void} onCrash
 * @returns {() => void} stops watching
 */
export function watchCrashes(onCrash) {
  process.on('uncaughtExceptionMonitor', onCrash);
  return () => process.off('uncaughtExceptionMonitor', onCrash);
}
