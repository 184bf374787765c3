/**
 * The browser entry point of log-collector-durable: one ES module with no bundler and
 * no Node module behind it.
 *
 *     <script type="module">
 *       import { createLogClient } from '/static/log-collector/browser.js';
 *       const logger = createLogClient('https://logs.example.com', { service: 'web-app' });
 *       logger.info('page loaded', { path: location.pathname });
 *     </script>
 *
 * Records wait in IndexedDB until the server acknowledges them (see browser-client.js).
 */

import { BrowserLogClient } from './browser-client.js';

export { BrowserLogClient };
/** The original browser client's class name, kept so its users' imports still work. */
export { BrowserLogClient as WebWorkerLogClient };
export { LEVELS } from './record.js';

/**
 * A browser log client for `serverUrl`.
 *
 * @param {string|null} [serverUrl] default `http://localhost:8000`
 * @param {import('./browser-client.js').BrowserClientOptions} [options]
 * @returns {BrowserLogClient}
 */
export function createLogClient(serverUrl, options = {}) {
  return new BrowserLogClient(serverUrl, options);
}
