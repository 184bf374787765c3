/**
 * The application's frame of a log call, from V8's structured stack trace: the first frame
 * outside this package's src directory and outside Node's own modules.
 * https://v8.dev/docs/stack-trace-api
 *
 * This runs on every log call, and capturing the frame is most of its cost: V8 walks the
 * stack down to the public method (`above`), describing each frame on the way, and then
 * the frame below it. So the log methods capture one frame first thing, in their own bodies
 * (node-client.js), and read it after (`callerOfFrame`); `findCaller` serves the other entry
 * points. A file is classified once, and each call site gets one Caller object,
 * made and JSON-encoded once (record.js `frozenCaller`).
 */

import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { frozenCaller } from './record-text.js';

const SRC_DIR = path.dirname(fileURLToPath(import.meta.url)) + path.sep;
const SRC_URL = pathToFileURL(SRC_DIR).href;
// The public method is skipped by `above`, so the app's frame is usually the first one
// below it; the deeper look is for calls made through the library's own helpers
// (express.js). Each frame captured costs time on every log call.
const NEAR_FRAMES = 1;
const FAR_FRAMES = 16;
// V8's file name of a frame -> its call sites (line -> Caller), or null for the library's
// and Node's own files. Emptied when it holds this many files and call sites together.
const files = new Map();
const MAX_ENTRIES = 10_000;
let entries = 0;

/**
 * An `Error.prepareStackTrace` that gives V8's CallSite objects as they are.
 *
 * @param {Error} _error
 * @param {object[]} callSites
 * @returns {object[]}
 */
export function asCallSites(_error, callSites) {
  return callSites;
}

/**
 * @typedef {object} Caller
 * @property {string} function_name
 * @property {string|null} file_path
 * @property {number|null} line_no
 */

/**
 * The app's frame that led to this call, or null when there is none (a log call made by
 * the library itself from a Node callback, say).
 *
 * @param {Function} [above] frames above and including this function are skipped
 * @returns {Caller|null}
 */
export function findCaller(above = findCaller) {
  return callerFrom(captureSites(above, NEAR_FRAMES), above);
}

/**
 * The app's frame from `frame`, an object on which `Error.captureStackTrace(frame, above)`
 * captured one frame and whose `stack` is not read yet (V8 describes the frames only
 * then), or null.
 *
 * @param {object|null} frame
 * @param {Function} above the function given to `Error.captureStackTrace`
 * @returns {Caller|null}
 */
export function callerOfFrame(frame, above) {
  if (frame === null) return null;
  const prepare = Error.prepareStackTrace;
  let callSites;
  try {
    Error.prepareStackTrace = asCallSites;
    callSites = frame.stack;
  } catch {
    return null;
  } finally {
    Error.prepareStackTrace = prepare;
  }
  return Array.isArray(callSites) ? callerFrom(callSites, above) : null;
}

/**
 * The app's frame from `callSites`, the frame below `above` as V8 describes it (captured
 * with `Error.stackTraceLimit = 1` and `asCallSites` as `Error.prepareStackTrace`); when
 * it is the library's, a deeper look from here.
 *
 * @param {object[]|null} callSites
 * @param {Function} above
 * @returns {Caller|null}
 */
export function callerFrom(callSites, above) {
  if (callSites === null) return null;
  try {
    const found = appFrame(callSites);
    if (found !== undefined) return found;
    const far = captureSites(above, FAR_FRAMES);
    return (far && appFrame(far)) ?? null;
  } catch {
    return null; // a CallSite that cannot be read: no caller, the record still goes
  }
}

function captureSites(above, frames) {
  const prepare = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  let callSites;
  try {
    Error.prepareStackTrace = asCallSites;
    Error.stackTraceLimit = frames;
    const holder = {};
    Error.captureStackTrace(holder, above);
    callSites = holder.stack;
  } catch {
    return null;
  } finally {
    Error.prepareStackTrace = prepare;
    Error.stackTraceLimit = limit;
  }
  return Array.isArray(callSites) ? callSites : null;
}

/** The first app frame of `callSites` as a Caller; undefined when there is none. */
function appFrame(callSites) {
  for (const site of callSites) {
    const file = site.getFileName();
    if (!file) continue;
    let lines = files.get(file);
    if (lines === undefined) lines = remember(file, isOurs(file) ? null : new Map());
    if (lines === null) continue;
    const line = site.getLineNumber();
    const name = site.getFunctionName() || '<anonymous>';
    let caller = lines.get(line);
    if (caller === undefined || caller.function_name !== name) {
      caller = frozenCaller(name, pathOf(file), line);
      if (entries >= MAX_ENTRIES) lines = remember(file, new Map());
      lines.set(line, caller);
      entries += 1;
    }
    return caller;
  }
  return undefined;
}

/** Keep `lines` for `file`, emptying the cache first when it is full. */
function remember(file, lines) {
  if (entries >= MAX_ENTRIES) {
    files.clear();
    entries = 0;
  }
  files.set(file, lines);
  entries += 1;
  return lines;
}

function isOurs(file) {
  return file.startsWith(SRC_URL) || file.startsWith(SRC_DIR) || file.startsWith('node:');
}

function pathOf(file) {
  if (!file.startsWith('file://')) return file;
  try {
    return fileURLToPath(file);
  } catch {
    return file;
  }
}

/**
 * The stack of the current call as text, the library's frames left out (for
 * `errorWithTrace` without an error).
 *
 * @param {Function} above
 * @returns {string}
 */
export function currentStack(above) {
  const holder = {};
  const limit = Error.stackTraceLimit;
  try {
    Error.stackTraceLimit = 30;
    Error.captureStackTrace(holder, above);
  } finally {
    Error.stackTraceLimit = limit;
  }
  const lines = String(holder.stack ?? '').split('\n');
  const frames = lines.slice(1).filter((line) => !line.includes(SRC_DIR) && !line.includes(SRC_URL));
  return ['Stack (most recent call first):', ...frames].join('\n');
}
