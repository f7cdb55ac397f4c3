// Writes sdk-vectors.json: for each line of inputs.txt (one JSON document per line; the
// indented example spans lines until a blank-free closing brace), the hashes that the
// published dstack SDK's getComposeHash gives after JSON.parse. Run from a directory where
// `npm install @phala/dstack-sdk@0.5.8` was done:  node gen-sdk-vectors.js > sdk-vectors.json
const fs = require('fs');
const path = require('path');
// The package's index pulls optional peers in; its compose-hash module stands alone.
const dist = path.dirname(require.resolve('@phala/dstack-sdk'));
const { getComposeHash } = require(path.join(dist, 'get-compose-hash.js'));
const sdkVersion = JSON.parse(fs.readFileSync(path.join(dist, '..', 'package.json'), 'utf8')).version;
const docs = [];
let cur = '';
for (const line of fs.readFileSync(path.join(__dirname, 'inputs.txt'), 'utf8').split('\n')) {
  if (line === '') continue;
  cur = cur ? cur + '\n' + line : line;
  try { JSON.parse(cur); docs.push(cur); cur = ''; } catch (e) { /* a multi-line document */ }
}
if (cur) throw new Error('unparsed input: ' + cur);
const out = docs.map((text) => ({
  input: text,
  sdk: getComposeHash(JSON.parse(text)),
  sdk_normalized: getComposeHash(JSON.parse(text), true),
}));
// Real app-compose documents, read in place from the shared reference data (SHARED, default
// ../shared beside the repository): a file, or a guest agent Info's tcb_info.app_compose.
const shared = process.env.SHARED || path.join(__dirname, '..', '..', '..', '..', 'shared');
const real = [
  'real-attestations/dstack-examples-attestation-2025/app-compose.json',
  'real-attestations/dstack-sdk-simulator/app-compose.c65b8991.json',
  'real-attestations/phala-trust-center/kmsInfo/prod6-eth.78684baf.json',
  'real-attestations/phala-trust-center/kmsInfo/prod6-051-base.cf479fc2.json',
  'real-attestations/phala-trust-center/kmsInfo/gpu8-054-pha.b24b51f7.json',
].map((rel) => {
  let text = fs.readFileSync(path.join(shared, rel), 'utf8');
  const doc = JSON.parse(text);
  if (doc.tcb_info) text = JSON.parse(doc.tcb_info).app_compose;
  return { shared: rel, sdk: getComposeHash(JSON.parse(text)), sdk_normalized: getComposeHash(JSON.parse(text), true) };
});
process.stdout.write(JSON.stringify({ generator: `@phala/dstack-sdk ${sdkVersion} getComposeHash, node ${process.version}`, vectors: out, real }, null, 1) + '\n');
