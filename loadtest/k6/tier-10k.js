// The guide's 10k tier: 10000 requests/s for 10s; fails above 0 error rate or a p99 of 100 ms.
import { tier, send } from './lib.js';

export const options = tier(10000, 10, 64, 0, 100);

export default function () {
  send();
}
