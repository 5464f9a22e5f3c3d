// The guide's 1k tier: 1000 requests/s for 10s; fails above 0 error rate or a p99 of 25 ms.
import { tier, send } from './lib.js';

export const options = tier(1000, 10, 16, 0, 25);

export default function () {
  send();
}
