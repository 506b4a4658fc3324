import http from 'k6/http';
import { check } from 'k6';
export const options = {
  scenarios: { up: { executor: 'constant-arrival-rate', rate: 5, timeUnit: '1s', duration: '2s', preAllocatedVUs: 2, tags: { kind: 'virtual', endpoint: '/api/x' } } },
  thresholds: { http_req_duration: ['p(95)<2000', 'avg<0.0001'], 'http_req_duration{scenario:up}': ['p(99)<3000'], http_req_failed: ['rate<0.6'], checks: ['rate>0.99'] },
};
export default function () {
  const r = http.post('http://127.0.0.1:34183/api/x', 'abc', { headers: { 'X-Device-ID': 'd1' } });
  check(r, { 'is status 200': (r) => r.status === 200 });
  const m = http.get('http://127.0.0.1:34183/missing');
  check(m, { 'is status 200': (r) => r.status === 200 });
}
export function handleSummary(data) { return { 'handle.json': JSON.stringify(data, null, 1), 'stdout': '' }; }
