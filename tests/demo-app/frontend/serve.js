#!/usr/bin/env node
// The demo page's web server (Node >= 20, no dependencies): the page, the browser
// client's modules from clients/js/src, /config.json with the log server's URL, and
// /api/* forwarded to the demo backend, so the page and its API share one origin while
// the log server is another origin whose CORS allows this one.
//
//   node tests/demo-app/frontend/serve.js --port 8080 --api http://127.0.0.1:8001 \
//       --log-server http://127.0.0.1:8000
import fs from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLIENT_SRC = path.resolve(HERE, '../../../clients/js/src');
const PAGE_FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/app.css': ['app.css', 'text/css; charset=utf-8'],
};
const CLIENT_MODULE = /^\/clients\/js\/src\/([a-z-]+\.js)$/;
const FORWARDED_REQUEST_HEADERS = ['content-type', 'authorization', 'traceparent', 'x-trace-id', 'x-user-id'];
const FORWARDED_RESPONSE_HEADERS = ['content-type', 'x-trace-id', 'retry-after'];

const { values: args } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8080' },
    api: { type: 'string', default: 'http://127.0.0.1:8001' },
    'log-server': { type: 'string', default: 'http://127.0.0.1:8000' },
  },
});
const apiUrl = args.api.replace(/\/+$/, '');
const logServerUrl = args['log-server'].replace(/\/+$/, '');

// Script only from this origin (no inline script), requests only to it and the log server.
const SECURITY_HEADERS = {
  'content-security-policy': [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    `connect-src 'self' ${new URL(logServerUrl).origin}`,
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

function send(res, status, type, body) {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type });
  res.end(body);
}

async function serveFile(res, file, type) {
  try {
    send(res, 200, type, await fs.readFile(file));
  } catch {
    send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
  }
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function forward(req, res, pathAndQuery) {
  const headers = {};
  for (const name of FORWARDED_REQUEST_HEADERS) {
    if (req.headers[name]) headers[name] = req.headers[name];
  }
  const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : await readBody(req);
  let answer;
  try {
    answer = await fetch(`${apiUrl}${pathAndQuery}`, { method: req.method, headers, body, redirect: 'manual' });
  } catch (error) {
    send(res, 502, 'application/json', JSON.stringify({ detail: `demo backend unreachable at ${apiUrl}: ${error.cause?.code ?? error.message}` }));
    return;
  }
  const out = { ...SECURITY_HEADERS };
  for (const name of FORWARDED_RESPONSE_HEADERS) {
    const value = answer.headers.get(name);
    if (value) out[name] = value;
  }
  res.writeHead(answer.status, out);
  res.end(Buffer.from(await answer.arrayBuffer()));
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  try {
    if (url.pathname.startsWith('/api/')) {
      await forward(req, res, url.pathname + url.search);
    } else if (req.method !== 'GET') {
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    } else if (url.pathname === '/config.json') {
      send(res, 200, 'application/json', JSON.stringify({ logServerUrl }));
    } else if (PAGE_FILES[url.pathname]) {
      const [name, type] = PAGE_FILES[url.pathname];
      await serveFile(res, path.join(HERE, name), type);
    } else if (CLIENT_MODULE.test(url.pathname)) {
      await serveFile(res, path.join(CLIENT_SRC, CLIENT_MODULE.exec(url.pathname)[1]), 'text/javascript; charset=utf-8');
    } else {
      send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    }
  } catch (error) {
    if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', `${error}\n`);
    else res.destroy();
  }
});

server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  console.log(`demo frontend on http://${args.host}:${port} (API ${apiUrl}, logs to ${logServerUrl})`);
});
