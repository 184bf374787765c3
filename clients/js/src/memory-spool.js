/**
 * The in-memory fallback of a client whose spool cannot be used.
 */

import { warnOnce } from './warnings.js';

/**
 * The records of a client whose spool could not be opened: kept in memory, bounded, the
 * oldest dropped and counted. Same interface as `Spool` for the sender.
 */
export class MemorySpool {
  /** @param {number} capacity */
  constructor(capacity = 10_000) {
    this.path = null;
    this.closed = false;
    this._capacity = capacity;
    this._items = [];
    this._nextId = 1;
    this.dropped = {};
    this.deadLettered = 0;
  }

  get rows() {
    return this._items.length;
  }

  get bytes() {
    return this._items.reduce((sum, item) => sum + item.body.length, 0);
  }

  highWater() {
    return this._nextId - 1;
  }

  append(createdAt, body) {
    if (this._items.length >= this._capacity) {
      this._items.shift();
      this.dropped.memory_full = (this.dropped.memory_full ?? 0) + 1;
      warnOnce('drop:memory', 'log-collector: the in-memory fallback is full; dropping the oldest records (counted in stats().dropped)');
    }
    const id = this._nextId;
    this._nextId += 1;
    this._items.push({ id, body });
    return id;
  }

  read(limit) {
    return this._items.slice(0, limit);
  }

  ack(ids) {
    const gone = new Set(ids);
    this._items = this._items.filter((item) => !gone.has(item.id));
  }

  deadLetter(rows) {
    this.ack(rows.map((row) => row.id));
    this.deadLettered += rows.length;
  }

  hasAtOrBelow(mark) {
    return this._items.length > 0 && this._items[0].id <= mark;
  }

  deadLetterCount() {
    return 0;
  }

  checkpoint() {}

  close() {
    this.closed = true;
    return this._items.length;
  }
}
