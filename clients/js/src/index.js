/**
 * log-collector-durable for Node: `createLogClient` and the client class.
 *
 * Browsers get src/browser.js instead, through the package's "browser" export condition.
 */

import { WorkerThreadsLogClient } from './node-client.js';

/**
 * Create a log client: every log call is stored in a local SQLite spool before it returns
 * and delivered to `{serverUrl}/logs` in the background.
 *
 * @param {string} [serverUrl] else LOG_SERVER_URL, else http://localhost:8000
 * @param {import('../index.js').LogClientOptions} [options]
 * @returns {WorkerThreadsLogClient}
 */
export function createLogClient(serverUrl, options = {}) {
  return new WorkerThreadsLogClient(serverUrl, options);
}

export { WorkerThreadsLogClient };
export {
  runWithContext,
  getRequestContext,
  runWithUserContext,
  getUserContext,
  setUserContext,
  clearUserContext,
} from './context.js';

export default { createLogClient, WorkerThreadsLogClient };
