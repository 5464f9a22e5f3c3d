// Shared by the tier scripts: the same request and thresholds as the Go
// scenarios in loadtest/scenarios (keep them in step).
//
//   k6 run -e URL=http://127.0.0.1:8080/openai/chat/completions -e KEY=crk_... loadtest/k6/tier-1k.js
//
// k6's constant-arrival-rate executor is open-loop like caracal-loadgen:
// iterations start on schedule whatever the server does; dropped_iterations
// counts those it could not start (caracal-loadgen's "overload").
import http from 'k6/http';
import { check } from 'k6';

const body = JSON.stringify({
  model: 'gpt-4o-mini',
  max_tokens: 24,
  messages: [{ role: 'user', content: 'Say hello in five words.' }],
});

export function tier(rate, seconds, vus, maxErrorRate, p99ms) {
  return {
    scenarios: {
      tier: {
        executor: 'constant-arrival-rate',
        rate: rate,
        timeUnit: '1s',
        duration: `${seconds}s`,
        preAllocatedVUs: vus,
        maxVUs: vus * 4,
      },
    },
    thresholds: {
      // Error rate: share of requests not answered 2xx.
      http_req_failed: [{ threshold: `rate<=${maxErrorRate}`, abortOnFail: false }],
      // p99 latency; k6 measures from the actual send, so dropped
      // iterations are failed too (an open-loop run that cannot keep its
      // schedule must not pass).
      http_req_duration: [`p(99)<${p99ms}`],
      dropped_iterations: [`count<=${Math.floor(rate * seconds * maxErrorRate)}`],
      checks: [`rate>=${1 - maxErrorRate}`],
    },
    summaryTrendStats: ['p(50)', 'p(90)', 'p(99)', 'p(99.9)', 'max', 'avg'],
  };
}

export function send() {
  const res = http.post(__ENV.URL || 'http://127.0.0.1:8080/openai/chat/completions', body, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${__ENV.KEY}` },
  });
  check(res, { '2xx': (r) => r.status >= 200 && r.status < 300 });
}

// The ledger check (ledger rows == accepted requests) needs PostgreSQL,
// which k6 cannot reach: after the run, compare the count printed by
//   caracal ledger summary --agent AGENT
// with the "2xx" checks passed, or run caracal-loadgen -scenario with -db.
