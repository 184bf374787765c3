/**
 * The demo service of the original system, on Express, logging through the durable
 * JavaScript client (clients/js): log in as demo / demo123, create, list, update and delete
 * todos (kept in memory), hit an endpoint that throws, and one that is slow and timed.
 * Every request goes through the client's Express middleware, so each record carries path,
 * method, ip, trace_id (and user_id when the caller sends x-user-id), and "Request received"
 * / "Request completed" frame it.
 *
 *   node tests/demo-app/backend/server.js --port 8002
 *
 * Express comes from clients/js's own node_modules (`npm ci` in clients/js installs it as a
 * dev dependency), so there is one install for the client, its tests and this demo.
 * README.md next to this file says how to run it against `log-collector serve`. Tests build
 * the app with `createApp(client)` and their own client; nothing happens at import.
 */

import crypto from 'node:crypto';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLIENT_DIR = path.resolve(HERE, '..', '..', '..', 'clients', 'js');
const requireFromClient = createRequire(path.join(CLIENT_DIR, 'package.json'));
const express = requireFromClient('express');
const { createLogClient } = await import(pathToFileURL(path.join(CLIENT_DIR, 'src', 'index.js')).href);
const { logCollectorMiddleware, logCollectorErrorHandler } = await import(
  pathToFileURL(path.join(CLIENT_DIR, 'src', 'express.js')).href
);

export const DEMO_USERNAME = 'demo';
export const DEMO_PASSWORD = 'demo123';
export const DEMO_USER_ID = 'user-demo';

/**
 * The demo app, logging through `client` (made from the environment when not given:
 * LOG_SERVER_URL, SERVICE_NAME, LOG_COLLECTOR_SPOOL_DIR... as for any client).
 *
 * @param {import('../../../clients/js/src/node-client.js').WorkerThreadsLogClient} [client]
 */
export function createApp(client = createLogClient(undefined, { service: 'demo-backend-node', enableGlobalErrorHandler: true })) {
  const log = client;
  const app = express();
  const sessions = new Map(); // token -> user id
  const todos = new Map(); // id -> todo
  let nextId = 1;

  app.use(express.json());
  app.use(logCollectorMiddleware(log, { excludePaths: ['/health'] }));

  function currentUser(req, res) {
    const token = (req.get('authorization') ?? '').replace(/^Bearer /, '').trim();
    const userId = sessions.get(token);
    if (!userId) {
      log.warn('Unauthenticated request', { action_type: 'auth' });
      res.status(401).json({ detail: 'log in first' });
      return null;
    }
    return userId;
  }

  function owned(todoId, userId, res) {
    const todo = todos.get(todoId);
    if (!todo || todo.owner !== userId) {
      log.warn('Todo not found', { user_id: userId, todo_id: todoId });
      res.status(404).json({ detail: 'no such todo' });
      return null;
    }
    return todo;
  }

  app.get('/health', (req, res) => res.json({ status: 'ok' }));

  app.post('/api/login', function login(req, res) {
    const { username, password } = req.body ?? {};
    if (username === DEMO_USERNAME && password === DEMO_PASSWORD) {
      const token = crypto.randomBytes(24).toString('base64url');
      sessions.set(token, DEMO_USER_ID);
      log.info('Login succeeded', { user_id: DEMO_USER_ID, action_type: 'login' });
      res.json({ token, user_id: DEMO_USER_ID });
      return;
    }
    // The password is never logged; the username helps spot credential stuffing.
    log.warn('Login failed', { username, action_type: 'login' });
    res.status(401).json({ detail: 'invalid username or password' });
  });

  app.get('/api/todos', function listTodos(req, res) {
    const userId = currentUser(req, res);
    if (!userId) return;
    const mine = [...todos.values()].filter((todo) => todo.owner === userId);
    log.debug('Todos listed', { user_id: userId, count: mine.length, action_type: 'todo_list' });
    res.json(mine);
  });

  app.post('/api/todos', function createTodo(req, res) {
    const userId = currentUser(req, res);
    if (!userId) return;
    const { title, done = false } = req.body ?? {};
    if (typeof title !== 'string' || !title.trim()) {
      res.status(422).json({ detail: 'title is required' });
      return;
    }
    const todo = { id: nextId, owner: userId, title, done: Boolean(done) };
    nextId += 1;
    todos.set(todo.id, todo);
    log.info('Todo created', { user_id: userId, todo_id: todo.id, action_type: 'todo_create' });
    res.status(201).json(todo);
  });

  app.put('/api/todos/:id', function updateTodo(req, res) {
    const userId = currentUser(req, res);
    if (!userId) return;
    const todoId = Number(req.params.id);
    const todo = owned(todoId, userId, res);
    if (!todo) return;
    const { title, done } = req.body ?? {};
    if (typeof title === 'string') todo.title = title;
    if (typeof done === 'boolean') todo.done = done;
    log.info('Todo updated', { user_id: userId, todo_id: todoId, action_type: 'todo_update' });
    res.json(todo);
  });

  app.delete('/api/todos/:id', function deleteTodo(req, res) {
    const userId = currentUser(req, res);
    if (!userId) return;
    const todoId = Number(req.params.id);
    if (!owned(todoId, userId, res)) return;
    todos.delete(todoId);
    log.info('Todo deleted', { user_id: userId, todo_id: todoId, action_type: 'todo_delete' });
    res.status(204).end();
  });

  app.get('/api/error', function failing() {
    // Not caught here: the error handler logs it with its stack trace, Express answers 500.
    throw new Error('Simulated failure in the demo backend');
  });

  function computeReport(n) {
    let total = 0;
    for (let i = 0; i < n; i += 1) total += i * i;
    return total;
  }

  app.get('/api/slow', async function slow(req, res) {
    const ms = Math.min(Math.max(Number(req.query.ms ?? 800) || 0, 0), 10_000);
    const started = log.startTimer();
    await new Promise((resolve) => setTimeout(resolve, ms));
    const report = log.measure(function computeReportTimed() { return computeReport(10_000); }, 'Report computed');
    log.endTimer(started, 'INFO', 'Slow operation finished', { delay_ms: ms, action_type: 'slow' });
    res.json({ delay_ms: ms, report });
  });

  app.use(logCollectorErrorHandler(log));
  return app;
}

function parsePort(argv) {
  const at = argv.indexOf('--port');
  return at === -1 ? 8002 : Number(argv[at + 1]);
}

function parseHost(argv) {
  const at = argv.indexOf('--host');
  return at === -1 ? '127.0.0.1' : argv[at + 1];
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const client = createLogClient(undefined, { service: 'demo-backend-node', enableGlobalErrorHandler: true });
  const app = createApp(client);
  const host = parseHost(process.argv);
  const port = parsePort(process.argv);
  app.listen(port, host, () => {
    client.info('Demo backend started', { action_type: 'startup', port });
    process.stdout.write(`demo backend listening on http://${host}:${port}\n`);
  });
}
