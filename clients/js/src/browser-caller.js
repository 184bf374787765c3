/**
 * The app's frame of a log call, read from `new Error().stack` (the only stack a browser
 * gives): `function_name`, `file_path` (the script's URL) and `line_no`.
 *
 * Frames of this library's own files (this folder) are skipped, so the first other frame
 * is the app's. When every frame is in this folder (the library bundled into the app's
 * file), the frame `fallbackDepth` levels up is taken instead.
 */

const LIBRARY_DIR = new URL('./', import.meta.url).href;

// V8: "    at fn (https://x/app.js:10:5)", "    at https://x/app.js:10:5", "    at async fn (...)"
const V8_FRAME = /^\s*at (?:(.+?) \((.+?):(\d+):\d+\)|(.+?):(\d+):\d+)$/;
// SpiderMonkey and JavaScriptCore: "fn@https://x/app.js:10:5", "@https://x/app.js:10:5"
const GECKO_FRAME = /^(.*?)@(.+?):(\d+):\d+$/;

/**
 * @typedef {{function_name: string, file_path: string, line_no: number}} Caller
 */

/**
 * One stack line as a frame, or null for a line that is none (the message line).
 *
 * @param {string} line
 * @returns {Caller|null}
 */
export function parseFrame(line) {
  const v8 = V8_FRAME.exec(line);
  if (v8) {
    const name = v8[1] === undefined ? '' : v8[1].replace(/^async /, '');
    return frame(name, v8[2] ?? v8[4], v8[3] ?? v8[5]);
  }
  const gecko = GECKO_FRAME.exec(line);
  if (gecko) return frame(gecko[1], gecko[2], gecko[3]);
  return null;
}

function frame(name, file, line) {
  return { function_name: name || '<anonymous>', file_path: file, line_no: Number(line) };
}

/**
 * The frames of a stack text, innermost first.
 *
 * @param {string} stack
 * @returns {Caller[]}
 */
export function parseStack(stack) {
  const frames = [];
  for (const line of String(stack).split('\n')) {
    const parsed = parseFrame(line);
    if (parsed) frames.push(parsed);
  }
  return frames;
}

/**
 * The caller of the library: the innermost frame outside this folder.
 *
 * @param {number} fallbackDepth frames between this function and the app's frame
 * @returns {Caller|null}
 */
export function findCaller(fallbackDepth) {
  let frames;
  try {
    frames = parseStack(new Error().stack);
  } catch {
    return null;
  }
  const outside = frames.find((f) => !f.file_path.startsWith(LIBRARY_DIR));
  return outside ?? frames[fallbackDepth] ?? null;
}

/**
 * The current stack without this library's frames: the `stack_trace` of an
 * `errorWithTrace` call that has no error.
 *
 * @returns {string}
 */
export function currentStack() {
  const lines = String(new Error().stack ?? '').split('\n');
  const kept = lines.filter((line) => {
    const parsed = parseFrame(line);
    return parsed && !parsed.file_path.startsWith(LIBRARY_DIR);
  });
  return ['Error: errorWithTrace called without an error', ...kept].join('\n');
}
