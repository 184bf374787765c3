/**
 * A batch the server keeps answering 500 for: split it, hold it, or dead-letter one record.
 * The rules of log_collector/client/server_errors.py, for the Node and the browser senders.
 *
 * 500 is the server's application failing on this request; repeated, it may be the content
 * of one record. A batch answered 500 SPLIT_AFTER_500 times in a row is split in two. A
 * record that alone gets as many is dead-lettered only when the server acknowledged other
 * records since the trouble began (so the server works, only this record fails). While the
 * server answers every part 500, nothing is dead-lettered: the parts are held and the batch
 * is read and sent again after a backoff, like any outage. Environment-neutral.
 */

export const SPLIT_AFTER_500 = 3;

/**
 * @typedef {object} Held parts answered 500 before the server was seen storing anything else
 * @property {object[]} rows
 * @property {number} mark the acknowledgements when the trouble began
 * @property {object} outcome the last answer
 */

/**
 * @callback Deliver sends `rows` until each is acknowledged, dead-lettered or held
 * @param {object[]} rows
 * @param {number} mark
 * @returns {Promise<object|null>} null when done, else the outcome to retry after
 */

export class ServerErrors {
  constructor() {
    /** Batches acknowledged (not every record refused): the proof that the server stores records. */
    this.acks = 0;
    /** @type {Held[]} parts of the current batch held (see `after500`) */
    this.held = [];
  }

  /**
   * `post()` again while it is answered 500, SPLIT_AFTER_500 times at most, with
   * `pause(attempt, outcome)` between; the last outcome. `stopped()` ends it at once.
   *
   * @param {() => Promise<object>} post
   * @param {(attempt: number, outcome: object) => Promise<void>} pause
   * @param {() => boolean} stopped
   * @returns {Promise<object>}
   */
  async post(post, pause, stopped) {
    for (let attempt = 1; ; attempt += 1) {
      const outcome = await post();
      if (outcome.status !== 500 || attempt >= SPLIT_AFTER_500 || stopped()) return outcome;
      await pause(attempt, outcome);
      if (stopped()) return outcome;
    }
  }

  /**
   * `rows` got SPLIT_AFTER_500 500s in a row: split them (each half through `deliver`);
   * dead-letter a lone record once the server has stored other records since the 500s
   * began (`mark`: the acknowledgements then); else hold them. Until some other part is
   * acknowledged, the first lone record found is held and further parts are held whole
   * rather than split, so a server answering everything 500 costs about 2*log2(batch)
   * requests, not 2*batch.
   *
   * @param {object[]} rows
   * @param {object} outcome
   * @param {number} mark
   * @param {Deliver} deliver
   * @param {(row: object, reason: string) => Promise<void>|void} deadLetter
   * @returns {Promise<object|null>}
   */
  async after500(rows, outcome, mark, deliver, deadLetter) {
    const proven = this.acks > mark;
    if (rows.length === 1 && proven) {
      await deadLetter(rows[0], `${outcome.detail} (answered 500 ${SPLIT_AFTER_500} times in a row for this record alone while the server stored others)`);
      return null;
    }
    if (rows.length === 1 || (!proven && this.held.length > 0)) {
      this.held.push({ rows, mark, outcome });
      return null;
    }
    const middle = Math.floor(rows.length / 2);
    return (await deliver(rows.slice(0, middle), mark)) ?? deliver(rows.slice(middle), mark);
  }

  /**
   * Send the held parts again where the server has since stored other records. When parts
   * are left that it has not, every part was answered 500: their outcome, to send the batch
   * again after a backoff (its rows are still queued).
   *
   * @param {Deliver} deliver
   * @returns {Promise<object|null>}
   */
  async retryHeld(deliver) {
    const held = this.held;
    this.held = [];
    const unresolved = [];
    for (const item of held) {
      if (this.acks > item.mark) {
        const failure = await deliver(item.rows, item.mark);
        if (failure !== null) return failure;
      } else {
        unresolved.push(item);
      }
    }
    const left = [...unresolved, ...this.held];
    this.held = [];
    return left.length > 0 ? left[0].outcome : null;
  }
}
