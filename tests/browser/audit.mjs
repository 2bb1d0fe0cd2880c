// The graphql-http audit suite (serverAudits) against a running Gatehouse: prints one
// JSON line per audit result and exits 1 on any error or warning.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs http://127.0.0.1:PORT/graphql');
  process.exit(2);
}
let bad = 0;
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  const result = await audit.fn();
  if (result.status !== 'ok') {
    bad += 1;
    let body = '';
    try {
      body = await result.response.text();
    } catch {}
    console.log(JSON.stringify({ id: audit.id, name: audit.name, status: result.status, reason: result.reason, httpStatus: result.response?.status, body: body.slice(0, 300) }));
  }
}
console.log(JSON.stringify({ audits: 'done', failures: bad }));
process.exit(bad === 0 ? 0 : 1);
