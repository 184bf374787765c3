/**
 * A script that logs and ends, for the exit tests: it must exit by itself.
 *
 *   node short-script.js SERVER_URL SPOOL_DIR SERVICE COUNT
 */

import { createLogClient } from '../../../src/index.js';

const [serverUrl, spoolDir, service, count] = process.argv.slice(2);
const client = createLogClient(serverUrl, { service, spoolDir, exitTimeout: 1000 });
for (let i = 0; i < Number(count); i += 1) client.info('last words', { i });
process.stdout.write(`${performance.timeOrigin + performance.now()}\n`);
