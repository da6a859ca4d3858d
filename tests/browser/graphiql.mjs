// GraphiQL in real headless Chromium, offline. Run by tests/api/browser.rs,
// which starts two servers and passes them in the environment:
//
//   CEREBRAL_DEV_URL   a server in development mode (no token needed)
//   CEREBRAL_AUTH_URL  a server with CEREBRAL_JWT_SECRET
//   CEREBRAL_TOKEN     a token for the second one
//   CEREBRAL_SCREENSHOTS  the folder for graphiql.png and
//                         graphiql-subscription.png (docs/)
//   CHROMIUM           the browser (default /usr/bin/chromium)
//
// Every request that leaves 127.0.0.1 is aborted and fails the run: the
// page must work behind a firewall. A Content-Security-Policy violation, a
// console error (a failed load) or an uncaught page error fails it too. Exits non-zero with a message on
// the first failed check.
import { chromium } from 'playwright-core';
import { strict as assert } from 'node:assert';
import path from 'node:path';

const DEV = need('CEREBRAL_DEV_URL');
const AUTH = need('CEREBRAL_AUTH_URL');
const TOKEN = need('CEREBRAL_TOKEN');
const SHOTS = need('CEREBRAL_SCREENSHOTS');
const TIMEOUT = 30_000;

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

/** GraphQL over HTTP from the test itself (not through the page). */
async function gql(base, query, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query }),
  });
  const body = await r.json();
  assert.ok(!body.errors, `${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

const external = [];
const problems = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // No name resolves but 127.0.0.1: even a request the route below missed
  // (a worker's, a WebSocket) cannot reach the network.
  args: ['--no-sandbox', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});

async function open(url) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 860 } });
  await context.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.hostname === '127.0.0.1' || u.protocol === 'data:' || u.protocol === 'blob:') {
      return route.continue();
    }
    external.push(route.request().url());
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (/Content.Security.Policy|Refused to/i.test(text)) problems.push(`CSP: ${text}`);
    // 401s are expected: the authenticated server refuses the page's
    // requests until the token is in the headers editor.
    else if (m.type() === 'error' && !/status of 401/.test(text)) {
      problems.push(`console error: ${text}`);
    }
  });
  page.setDefaultTimeout(TIMEOUT);
  await page.goto(url);
  await page.locator('.graphiql-query-editor .view-lines').waitFor();
  return { context, page };
}

/** The text of the response pane (Monaco draws spaces as U+00A0). */
async function response(page) {
  const t = await page.locator('.graphiql-response .view-lines').innerText();
  return t.replace(/\u00a0/g, ' ');
}

async function waitResponse(page, pattern, what) {
  const deadline = Date.now() + TIMEOUT;
  let last = '';
  while (Date.now() < deadline) {
    last = await response(page);
    if (pattern.test(last)) return last;
    await page.waitForTimeout(200);
  }
  throw new Error(`${what}: the response pane never matched ${pattern}; it shows:\n${last}`);
}

async function run(page) {
  await page.locator('.graphiql-execute-button').click();
}

/** Replaces the contents of the visible headers editor. */
async function setHeaders(page, text) {
  const tab = page.locator('.graphiql-editor-tools button[data-name="headers"]');
  if ((await tab.getAttribute('class'))?.includes('active') !== true) await tab.click();
  const editor = page.locator('.graphiql-editor-tool .graphiql-editor:not(.hidden)').last();
  await editor.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  // insertText is one input event: Monaco's auto-closing of quotes and
  // braces does not apply to it.
  await page.keyboard.insertText(text);
}

/** Whether a graphql-transport-ws `subscribe` left the page. */
function subscribed(page) {
  return new Promise((resolve) => {
    page.on('websocket', (ws) => {
      ws.on('framesent', (f) => {
        if (typeof f.payload === 'string' && f.payload.includes('"subscribe"')) resolve(ws);
      });
    });
  });
}

const step = (s) => console.log(`browser: ${s}`);

// 1. A query from a `?query=` link, in development mode.
{
  const query = `query Personas {
  personas(first: 10) {
    nodes { key name title }
  }
}`;
  const { context, page } = await open(`${DEV}/graphql?query=${encodeURIComponent(query)}`);
  await run(page);
  const text = await waitResponse(page, /"key": "analyst"/, 'query from a ?query= link');
  assert.match(text, /"name": "Mary"/);
  await page.screenshot({ path: path.join(SHOTS, 'graphiql.png') });
  step('query from ?query= link shows the ten personas (docs/graphiql.png)');

  // 2. A subscription over WebSocket; an event created meanwhile appears.
  const sub = `subscription NewProjects {
  events(after: "HEAD", types: [PROJECT_CREATED]) {
    cursor type projectId payload
  }
}`;
  await page.goto(`${DEV}/graphql?query=${encodeURIComponent(sub)}`);
  await page.locator('.graphiql-query-editor .view-lines').waitFor();
  const ready = subscribed(page);
  await run(page);
  await ready;
  const d = await gql(
    DEV,
    'mutation { createProject(input: { name: "Seen in GraphiQL", workflowId: "greenfield-service" }) { project { id } } }',
  );
  const text2 = await waitResponse(page, /PROJECT_CREATED/, 'subscription event');
  assert.match(text2, /Seen in GraphiQL/);
  assert.ok(d.createProject.project.id);
  await page.screenshot({ path: path.join(SHOTS, 'graphiql-subscription.png') });
  step('subscription shows the PROJECT_CREATED event made over HTTP (docs/graphiql-subscription.png)');
  await context.close();
}

// 3. With authentication on: refused without a token, answered with the
// token from the headers editor, over HTTP and over WebSocket.
{
  const query = '{ personas(first: 3) { totalCount } }';
  const { context, page } = await open(`${AUTH}/graphql?query=${encodeURIComponent(query)}`);
  await setHeaders(page, '{}');
  await run(page);
  await waitResponse(page, /UNAUTHENTICATED/, 'query without a token');
  step('without a token the query is refused (UNAUTHENTICATED)');

  await setHeaders(page, JSON.stringify({ Authorization: `Bearer ${TOKEN}` }));
  await run(page);
  await waitResponse(page, /"totalCount": 10/, 'query with the token from the headers editor');
  step('with the token in the headers editor the query is answered');

  const sub = 'subscription { events(after: "HEAD", types: [PROJECT_CREATED]) { type payload } }';
  await page.goto(`${AUTH}/graphql?query=${encodeURIComponent(sub)}`);
  await page.locator('.graphiql-query-editor .view-lines').waitFor();
  await setHeaders(page, JSON.stringify({ Authorization: `Bearer ${TOKEN}` }));
  const ready = subscribed(page);
  await run(page);
  const ws = await ready;
  await gql(
    AUTH,
    'mutation { createProject(input: { name: "Token over WebSocket", workflowId: "greenfield-service" }) { project { id } } }',
    TOKEN,
  );
  await waitResponse(page, /Token over WebSocket/, 'subscription with the token in connection_init');
  assert.ok(ws.url().startsWith('ws://127.0.0.1'), ws.url());
  step('with the token the subscription (token in connection_init) shows the event');
  await context.close();
}

await browser.close();
assert.deepEqual(external, [], 'requests outside 127.0.0.1');
assert.deepEqual(problems, [], 'CSP violations, console or page errors');
step('no request left 127.0.0.1, no CSP violation, no console or page error');
