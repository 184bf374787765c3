/**
 * settings.js: option > environment > .env > package.json > default, checked once.
 */

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { resolveSettings, defaultSpoolDir, DEFAULTS } from '../../src/settings.js';
import { tempDir } from './helpers/server.js';

const cwd = tempDir('lc-settings-');
after(() => fs.rmSync(cwd, { recursive: true, force: true }));

test('defaults apply when nothing is given', () => {
  const settings = resolveSettings(undefined, {}, { env: {}, cwd, homedir: '/home/ann' });
  assert.equal(settings.serverUrl, DEFAULTS.serverUrl);
  assert.equal(settings.environment, 'development');
  assert.equal(settings.serviceVersion, 'v0.0.0-dev');
  assert.equal(settings.logType, 'BACKEND');
  assert.equal(settings.batchSize, 1000);
  assert.equal(settings.flushInterval, 1000);
  assert.equal(settings.enableCompression, true);
  assert.equal(settings.spoolDir, '/home/ann/.cache/log-collector/default');
});

test('an option wins over the environment, which wins over .env and package.json', () => {
  fs.writeFileSync(path.join(cwd, '.env'), 'SERVICE_NAME=from-dotenv\nexport SERVICE_VERSION="v9"\nLOG_TYPE=WORKER # a comment\n');
  fs.writeFileSync(path.join(cwd, 'package.json'), JSON.stringify({ name: 'from-package', version: '1.0.0' }));
  const env = { LOG_SERVER_URL: 'http://env:1/', NODE_ENV: 'production', SERVICE_NAME: 'from-env' };
  const settings = resolveSettings(null, { environment: 'staging' }, { env, cwd, homedir: '/h' });
  assert.equal(settings.serverUrl, 'http://env:1');
  assert.equal(settings.environment, 'staging');
  assert.equal(settings.service, 'from-env');
  assert.equal(settings.serviceVersion, 'v9');
  assert.equal(settings.logType, 'WORKER');
  assert.equal(settings.spoolDir, '/h/.cache/log-collector/from-env');
  const fromPackage = resolveSettings('http://x', {}, { env: {}, cwd: tempDirWith({ name: '@scope/app', version: '2.0.0' }), homedir: '/h' });
  assert.equal(fromPackage.service, '@scope/app');
  assert.equal(fromPackage.serviceVersion, '2.0.0');
  assert.equal(fromPackage.spoolDir, '/h/.cache/log-collector/@scope_app');
  assert.equal(process.env.SERVICE_VERSION === 'v9', false, '.env is never written into process.env');
});

function tempDirWith(pkg) {
  const dir = path.join(cwd, 'pkg');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg));
  return dir;
}

test('the spool directory comes from the option, LOG_COLLECTOR_SPOOL_DIR or XDG_CACHE_HOME', () => {
  assert.equal(resolveSettings('http://x', { spoolDir: 'rel' }, { env: {}, cwd: '/work' }).spoolDir, '/work/rel');
  assert.equal(resolveSettings('http://x', {}, { env: { LOG_COLLECTOR_SPOOL_DIR: '/s' }, cwd }).spoolDir, '/s');
  assert.equal(defaultSpoolDir('svc', { XDG_CACHE_HOME: '/xdg' }, '/h'), '/xdg/log-collector/svc');
});

test('an invalid option fails at construction, naming the option', () => {
  const where = { env: {}, cwd };
  assert.throws(() => resolveSettings('ftp://x', {}, where), /serverUrl/);
  assert.throws(() => resolveSettings('http://x', { batchSize: 0 }, where), /batchSize/);
  assert.throws(() => resolveSettings('http://x', { batchSize: 20_000 }, where), /batchSize/);
  assert.throws(() => resolveSettings('http://x', { flushInterval: 'soon' }, where), /flushInterval/);
  assert.throws(() => resolveSettings('http://x', { enableCompression: 'maybe' }, where), /enableCompression/);
  assert.throws(() => resolveSettings('http://x', { maxSpoolBytes: 10 }, where), /maxSpoolBytes/);
  assert.equal(resolveSettings('http://x', { enableGlobalErrorHandler: 'true' }, where).enableGlobalErrorHandler, true);
});

test('spoolFullPolicy and maxRecordAge are checked, from the options or the environment', () => {
  const env = {};
  assert.equal(resolveSettings(null, {}, { env }).spoolFullPolicy, 'drop_oldest');
  assert.equal(resolveSettings(null, {}, { env }).maxRecordAge, null);
  assert.equal(resolveSettings(null, {}, { env: { LOG_COLLECTOR_SPOOL_FULL_POLICY: 'drop_newest' } }).spoolFullPolicy, 'drop_newest');
  assert.equal(resolveSettings(null, { maxRecordAge: '3600000' }, { env }).maxRecordAge, 3_600_000);
  assert.throws(() => resolveSettings(null, { spoolFullPolicy: 'drop_all' }, { env }), /spoolFullPolicy="drop_all" must be one of drop_oldest, drop_newest/);
  assert.throws(() => resolveSettings(null, { maxRecordAge: 1000 }, { env }), /maxRecordAge=1000 must be a number of at least 60000/);
});
