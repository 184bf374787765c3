/**
 * The context helpers the original client had as static methods of its class:
 * `WorkerThreadsLogClient.runWithContext(...)` and the rest. Each is the function of that
 * name of a context module (context.js on AsyncLocalStorage for Node, browser-context.js
 * in a page), so the static method and the module's export are one function.
 */

export const CONTEXT_HELPERS = Object.freeze([
  'runWithContext', 'getRequestContext', 'runWithUserContext', 'getUserContext',
  'setUserContext', 'clearUserContext',
]);

/**
 * Give `Client` the context helpers of `context` as static methods (not enumerable, as a
 * class body defines them).
 *
 * @param {Function} Client
 * @param {Record<string, Function>} context
 */
export function addContextHelpers(Client, context) {
  for (const name of CONTEXT_HELPERS) {
    Object.defineProperty(Client, name, { value: context[name], writable: true, configurable: true });
  }
}
