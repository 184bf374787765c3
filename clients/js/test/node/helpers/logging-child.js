/**
 * A Node process that logs in a loop for the crash tests: after each log call returns it
 * writes the record's sequence number to stdout (synchronously), so every number printed
 * belongs to a call that returned.
 *
 *   node logging-child.js SERVER_URL SPOOL_DIR SERVICE
 */

import fs from 'node:fs';
import { createLogClient } from '../../../src/index.js';

const [serverUrl, spoolDir, service] = process.argv.slice(2);
const client = createLogClient(serverUrl, { service, spoolDir, flushInterval: 20, batchSize: 50 });
let seq = 0;

function burst() {
  for (let k = 0; k < 10; k += 1) {
    client.info('seq', { seq });
    fs.writeSync(1, `${seq}\n`);
    seq += 1;
  }
  // Yield to the event loop so the sender runs between bursts, as in a real app.
  setImmediate(burst);
}

burst();
