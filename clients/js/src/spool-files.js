/**
 * Spool files from the outside: the directory they live in, finding them, removing them,
 * and moving a damaged one aside. Never opens a spool file (see spool.js: closing a
 * descriptor would drop this process's locks on it).
 */

import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { warnOnce } from './warnings.js';

export const SUFFIX = '.spool';
// Beside a live spool: what it held at its owner's last snapshot, for `log-collector
// status`, which cannot read a file another process holds in exclusive locking mode.
export const SNAPSHOT_SUFFIX = '.status';
const SIDE_SUFFIXES = ['-wal', '-shm', SNAPSHOT_SUFFIX];

/**
 * Make `dir` (mode 0700) if missing; an unsafe directory (another user's, or one others
 * can write, where they could plant a link under a name the spool opens) gives the reason.
 *
 * @param {string} dir
 * @returns {string|null} why it cannot be used, or null
 */
export function prepareDirectory(dir) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = fs.statSync(dir);
  if (!st.isDirectory()) return `${dir} is not a directory`;
  const uid = typeof process.getuid === 'function' ? process.getuid() : null;
  if (uid !== null && st.uid !== uid && st.uid !== 0) return `${dir} belongs to uid ${st.uid}, not to this user`;
  if (st.mode & 0o022) return `other users can write to ${dir} (mode ${(st.mode & 0o777).toString(8)}; chmod go-w it)`;
  return null;
}

/**
 * The spool files of `dir` other than `exclude`, oldest first.
 *
 * @param {string} dir
 * @param {Set<string>} exclude
 * @returns {string[]}
 */
export function spoolFiles(dir, exclude = new Set()) {
  let names;
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const found = [];
  for (const name of names) {
    if (!name.endsWith(SUFFIX) || name.startsWith('.')) continue;
    const file = path.join(dir, name);
    if (exclude.has(file)) continue;
    try {
      found.push({ file, mtime: fs.lstatSync(file).mtimeMs });
    } catch {
      // vanished meanwhile
    }
  }
  return found.sort((a, b) => a.mtime - b.mtime).map((entry) => entry.file);
}

/**
 * Remove a spool file and its side files.
 *
 * @param {string} file
 */
export function removeSpoolFiles(file) {
  for (const suffix of ['', ...SIDE_SUFFIXES]) {
    try {
      fs.unlinkSync(file + suffix);
    } catch {
      // already gone
    }
  }
}

/**
 * Rename a damaged spool (and its WAL) aside to `*.corrupt`.
 *
 * @param {string} file
 * @param {string} why
 * @returns {string} the new name
 */
export function moveAside(file, why) {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
  const target = `${file}.${stamp}.corrupt`;
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      fs.renameSync(file + suffix, target + suffix);
    } catch {
      // no such side file
    }
  }
  warnOnce(`corrupt:${file}`, `log-collector: moved unusable spool ${file} aside to ${target}: ${why}`);
  return target;
}

/**
 * Write the status snapshot of the live spool `file` (the document the Python client's
 * `log_collector/client/spool/_files.py` writes and `log-collector status` reads): to a new
 * temporary name, then renamed, so a reader never sees half of it. The temporary name is
 * unique and opened with O_EXCL and O_NOFOLLOW (never an existing name, a planted link
 * included); the rename replaces a link at the final name rather than writing through it.
 * Best effort: a full disk only leaves it stale.
 *
 * @param {string} file
 * @param {object} doc
 */
export function writeSnapshot(file, doc) {
  const final = `${file}${SNAPSHOT_SUFFIX}`;
  const temporary = `${final}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  let fd;
  try {
    const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
    fd = fs.openSync(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  } catch {
    return;
  }
  try {
    fs.writeSync(fd, JSON.stringify(doc));
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(temporary, final);
  } catch {
    if (fd !== null) {
      try {
        fs.closeSync(fd);
      } catch {
        // closed already
      }
    }
    try {
      fs.unlinkSync(temporary);
    } catch {
      // gone already
    }
  }
}

/** Remove the status snapshot of `file` (its owner closes it). */
export function removeSnapshot(file) {
  try {
    fs.unlinkSync(`${file}${SNAPSHOT_SUFFIX}`);
  } catch {
    // none written, or gone already
  }
}
