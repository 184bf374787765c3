// The todo demo page: log in, manage todos, and see every action logged through the
// browser client of log-collector (clients/js/src/browser.js, imported as it is, no
// bundler). serve.js serves this page, the client's modules, /config.json (the log
// server's URL) and forwards /api/* to the demo backend.
//
// Each API call gets a W3C traceparent: the backend's middleware takes its trace id, so
// the page's record of the call and the backend's records of the request share trace_id.
// Data from the backend reaches the page only as text (textContent).
import { createLogClient } from '/clients/js/src/browser.js';

const config = await (await fetch('/config.json')).json();
const logger = createLogClient(config.logServerUrl, {
  service: 'demo-frontend',
  serviceVersion: 'v1.0.0',
  environment: 'development',
  enableGlobalErrorHandler: true,
});
const Logger = logger.constructor;

const sessionId = sessionStorage.getItem('session_id') ?? randomHex(8);
sessionStorage.setItem('session_id', sessionId);

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem('token');
let userId = sessionStorage.getItem('user_id');

function randomHex(bytes) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}

function parseJson(text) {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null; // a plain-text error page
  }
}

function showStatus(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

/** Call the backend; the page logs the call with its trace id, status and duration. */
async function api(method, path, body = undefined) {
  const traceId = randomHex(16);
  const headers = { traceparent: `00-${traceId}-${randomHex(8)}-01` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  if (userId) headers['x-user-id'] = userId;
  const started = logger.startTimer();
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    logger.errorWithTrace(`API ${method} ${path} unreachable`, error, { trace_id: traceId, path, method, action_type: 'api_call' });
    throw error;
  }
  const level = response.status >= 500 ? 'ERROR' : response.status >= 400 ? 'WARN' : 'INFO';
  logger.endTimer(started, level, `API ${method} ${path}`, {
    trace_id: traceId, path, method, status_code: response.status, action_type: 'api_call',
  });
  const text = await response.text();
  const data = parseJson(text);
  if (!response.ok) {
    const error = new Error(`${method} ${path} answered ${response.status}: ${data?.detail ?? text}`);
    error.status = response.status;
    error.traceId = traceId;
    throw error;
  }
  return data;
}

function showView() {
  const loggedIn = Boolean(token);
  $('login-view').hidden = loggedIn;
  $('todo-view').hidden = !loggedIn;
  $('user-name').textContent = userId ?? '';
  if (loggedIn) Logger.setUserContext({ user_id: userId, session_id: sessionId });
  else Logger.setUserContext({ session_id: sessionId });
}

function renderTodos(todos) {
  const list = $('todo-list');
  list.replaceChildren(...todos.map(todoItem));
  $('empty').hidden = todos.length > 0;
}

function todoItem(todo) {
  const item = document.createElement('li');
  item.dataset.todoId = String(todo.id);
  item.classList.toggle('done', Boolean(todo.done));
  const title = document.createElement('span');
  title.className = 'title';
  title.textContent = todo.title;
  const toggle = document.createElement('button');
  toggle.type = 'button';
  toggle.textContent = todo.done ? 'Undo' : 'Done';
  toggle.addEventListener('click', () => updateTodo(todo.id, { done: !todo.done }));
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.textContent = 'Delete';
  remove.addEventListener('click', () => deleteTodo(todo.id));
  item.append(title, toggle, remove);
  return item;
}

async function refresh() {
  renderTodos(await api('GET', '/api/todos'));
}

async function login(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const username = String(form.get('username'));
  try {
    const answer = await api('POST', '/api/login', { username, password: String(form.get('password')) });
    token = answer.token;
    userId = answer.user_id;
    sessionStorage.setItem('token', token);
    sessionStorage.setItem('user_id', userId);
    showView();
    logger.info('Login succeeded', { action_type: 'login' });
    showStatus(`Welcome, ${userId}.`);
    await refresh();
  } catch (error) {
    // The username helps spot credential stuffing; the password is never logged.
    logger.warn('Login failed', { username, action_type: 'login', status_code: error.status });
    showStatus('Wrong username or password.', true);
  }
}

function logout() {
  logger.info('Logged out', { action_type: 'logout' });
  token = null;
  userId = null;
  sessionStorage.removeItem('token');
  sessionStorage.removeItem('user_id');
  showView();
  showStatus('Logged out.');
}

async function addTodo(event) {
  event.preventDefault();
  const input = event.target.elements.title;
  try {
    const todo = await api('POST', '/api/todos', { title: input.value });
    logger.info('Todo created', { todo_id: todo.id, action_type: 'todo_create' });
    input.value = '';
    showStatus(`Added "${todo.title}".`);
    await refresh();
  } catch (error) {
    failed('Could not add the todo', error);
  }
}

async function updateTodo(id, change) {
  try {
    await api('PUT', `/api/todos/${id}`, change);
    logger.info('Todo updated', { todo_id: id, ...change, action_type: 'todo_update' });
    await refresh();
  } catch (error) {
    failed('Could not update the todo', error);
  }
}

async function deleteTodo(id) {
  try {
    await api('DELETE', `/api/todos/${id}`);
    logger.info('Todo deleted', { todo_id: id, action_type: 'todo_delete' });
    showStatus('Deleted.');
    await refresh();
  } catch (error) {
    failed('Could not delete the todo', error);
  }
}

function failed(what, error) {
  logger.errorWithTrace(what, error, { trace_id: error.traceId });
  if (error.status === 401) logout();
  showStatus(`${what}: ${error.message}`, true);
}

async function callFailingEndpoint() {
  try {
    await api('GET', '/api/error');
  } catch (error) {
    logger.errorWithTrace('The failing endpoint failed, as it should', error, { trace_id: error.traceId });
    showStatus(`The backend answered ${error.status}; both sides logged it with trace id ${error.traceId}.`, true);
  }
}

async function callSlowEndpoint() {
  showStatus('Waiting for the slow endpoint...');
  const answer = await logger.measure(async function slowEndpoint() {
    return api('GET', '/api/slow?ms=800');
  }, 'Slow endpoint answered');
  showStatus(`The slow endpoint answered after ${answer.delay_ms} ms.`);
}

function throwUncaught() {
  showStatus('Threw an uncaught error; the global error handler logged it.');
  setTimeout(() => {
    throw new Error('Uncaught error thrown by the demo page');
  });
}

function showClientStats() {
  const stats = logger.stats();
  const shown = {
    'records logged': stats.appended,
    'acknowledged by the server': stats.acknowledged,
    'retries': stats.retries,
    'last problem': stats.lastError ?? 'none',
  };
  $('client-stats').replaceChildren(...Object.entries(shown).flatMap(([name, value]) => {
    const term = document.createElement('dt');
    term.textContent = name;
    const detail = document.createElement('dd');
    detail.textContent = String(value);
    return [term, detail];
  }));
}

$('login-form').addEventListener('submit', login);
$('logout').addEventListener('click', logout);
$('todo-form').addEventListener('submit', addTodo);
$('backend-error').addEventListener('click', callFailingEndpoint);
$('slow').addEventListener('click', () => callSlowEndpoint().catch((error) => failed('The slow endpoint failed', error)));
$('uncaught').addEventListener('click', throwUncaught);

showView();
logger.info('Page loaded', { path: location.pathname, action_type: 'page_view' });
showClientStats();
setInterval(showClientStats, 1000);
if (token) refresh().catch((error) => failed('Could not load the todos', error));
window.demoLogger = logger;
document.body.dataset.ready = 'true';
