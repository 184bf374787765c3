/**
 * Request and user contexts for the browser client.
 *
 * A browser has no AsyncLocalStorage, so a context here is a synchronous stack: a context
 * given to `runWithContext` or `runWithUserContext` is visible to every log call made
 * while `fn` runs synchronously, and is gone once `fn` returns. When `fn` is async, the
 * log calls after its first `await` run later, outside the context; pass such values to
 * the log call itself, or set them page-wide with `setUserContext` (a page usually has
 * one user, so that is what the user context is for in a browser).
 *
 * The contexts belong to the page (this module), not to one client: every client of the
 * page sees them, as every Node client sees its process's AsyncLocalStorage.
 */

const requestStack = [];
const userStack = [];
let pageUser;

/**
 * Run `fn` with `context` as the request context of its synchronous part.
 *
 * @template T
 * @param {object} context fields such as `path`, `method`, `trace_id`
 * @param {() => T} fn
 * @returns {T} what `fn` returns
 */
export function runWithContext(context, fn) {
  requestStack.push(context);
  try {
    return fn();
  } finally {
    requestStack.pop();
  }
}

/**
 * The request context of the running code, if any.
 *
 * @returns {object|undefined}
 */
export function getRequestContext() {
  return requestStack.length ? requestStack[requestStack.length - 1] : undefined;
}

/**
 * Run `fn` with `context` merged over the current user context (its keys win) for the
 * synchronous part of `fn`; the outer context is back when `fn` returns.
 *
 * @template T
 * @param {object} context fields such as `user_id`, `session_id`, `trace_id`
 * @param {() => T} fn
 * @returns {T} what `fn` returns
 */
export function runWithUserContext(context, fn) {
  userStack.push({ ...getUserContext(), ...context });
  try {
    return fn();
  } finally {
    userStack.pop();
  }
}

/**
 * The user context of the running code: the innermost `runWithUserContext`, else the
 * page-wide one `setUserContext` set.
 *
 * @returns {object|undefined}
 */
export function getUserContext() {
  return userStack.length ? userStack[userStack.length - 1] : pageUser;
}

/**
 * Set the user context, visible at once to every later log call of the page. Inside
 * `runWithUserContext` it replaces that run's context until the run ends.
 *
 * @param {object} context
 */
export function setUserContext(context) {
  if (userStack.length) userStack[userStack.length - 1] = context;
  else pageUser = context;
}

/** Clear the user context that `setUserContext` set (inside a run: that run's context). */
export function clearUserContext() {
  setUserContext(undefined);
}
