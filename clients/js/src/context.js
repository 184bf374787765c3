/**
 * The request and user contexts of the Node client, on AsyncLocalStorage: each request,
 * promise chain and timer sees the context it was started in.
 *
 * The stores live on `globalThis` under a registry symbol, so two copies of this package
 * in one process (a dependency bundling its own) still share one context.
 */

import { AsyncLocalStorage } from 'node:async_hooks';

const KEY = Symbol.for('log-collector-durable.context');
const stores = globalThis[KEY] ?? (globalThis[KEY] = {
  request: new AsyncLocalStorage(),
  user: new AsyncLocalStorage(),
});

/** @type {AsyncLocalStorage<object|undefined>} */
export const requestStorage = stores.request;
/** @type {AsyncLocalStorage<object|undefined>} */
export const userStorage = stores.user;

/**
 * Run `fn` with `context` as the request context (path, method, ip, trace_id...).
 *
 * @template T
 * @param {object} context
 * @param {() => T} fn
 * @returns {T}
 */
export function runWithContext(context, fn) {
  return requestStorage.run(context, fn);
}

/** @returns {object|undefined} the request context in effect */
export function getRequestContext() {
  return requestStorage.getStore();
}

/**
 * Run `fn` with `context` merged over the user context in effect (the inner keys win);
 * the outer context is back once `fn` returns (or its promise settles, for what it awaits).
 *
 * @template T
 * @param {object} context
 * @param {() => T} fn
 * @returns {T}
 */
export function runWithUserContext(context, fn) {
  const outer = userStorage.getStore();
  return userStorage.run(outer ? { ...outer, ...context } : { ...context }, fn);
}

/** @returns {object|undefined} the user context in effect */
export function getUserContext() {
  return userStorage.getStore();
}

/**
 * Set the user context for the rest of the current synchronous execution and the
 * asynchronous work it starts from now on (AsyncLocalStorage.enterWith). Visible at once.
 * Inside `runWithUserContext` it lasts until that block ends.
 *
 * @param {object} context
 */
export function setUserContext(context) {
  userStorage.enterWith(context ? { ...context } : undefined);
}

/** Remove the user context for the rest of the current execution. */
export function clearUserContext() {
  userStorage.enterWith(undefined);
}
