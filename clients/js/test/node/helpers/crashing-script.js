/**
 * A script that dies of an uncaught exception or an unhandled rejection, with the client's
 * global error handler on: Node must still print the error and exit with code 1.
 *
 *   node crashing-script.js SERVER_URL SPOOL_DIR SERVICE exception|rejection
 */

import { createLogClient } from '../../../src/index.js';

const [serverUrl, spoolDir, service, how] = process.argv.slice(2);
const client = createLogClient(serverUrl, { service, spoolDir, enableGlobalErrorHandler: true });
client.info('about to fail');
if (how === 'rejection') {
  Promise.reject(new RangeError('rejected on purpose'));
} else {
  setTimeout(function failLater() {
    throw new TypeError('thrown on purpose');
  }, 10);
}
