// The guide's 100k tier: 100000 requests/s for 10s; fails above 0.001 error rate or a p99 of 250 ms.
import { tier, send } from './lib.js';

export const options = tier(100000, 10, 256, 0.001, 250);

export default function () {
  send();
}
