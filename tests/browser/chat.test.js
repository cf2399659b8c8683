// chat.test.js — the website chat widget in a real browser (Debian Chromium,
// headless, driven by playwright-core), against the real daemon.
//
// Run by tests/test_browser_chat.sh, which writes the daemon's config and an
// admin token and passes them in the environment: SB_BINARY, SB_CONFIG,
// SB_PORT, SB_TOKEN, PAGE_PORT, IDENTITY_SECRET. This script starts (and
// restarts) the daemon itself, serves the operator's page from another
// origin (its own port) with the snippet the API gives as `embed`, and
// prints one "ok - NAME" / "not ok - NAME" line per check.
'use strict';
const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');

const env = process.env;
const SB = `http://127.0.0.1:${env.SB_PORT}`;
const PAGE = `http://127.0.0.1:${env.PAGE_PORT}`;
let passed = 0, failed = 0;

function check(name, cond, detail) {
  if (cond) { passed++; console.log(`ok - ${name}`); }
  else { failed++; console.log(`not ok - ${name}`); if (detail !== undefined) console.log(`# ${detail}`); }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(fn, ms = 10000, every = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) return v;
    await sleep(every);
  }
}

// --- the daemon -------------------------------------------------------------
let daemon = null;
function startDaemon() {
  const log = fs.openSync(path.join(path.dirname(env.SB_CONFIG), 'daemon.log'), 'a');
  daemon = spawn(env.SB_BINARY, ['run', '-c', env.SB_CONFIG], { stdio: ['ignore', log, log] });
  return waitFor(async () => {
    try { return (await fetch(`${SB}/healthz`)).ok; } catch (e) { return false; }
  }, 15000, 100);
}
function stopDaemon() {
  return new Promise((resolve) => {
    if (!daemon || daemon.exitCode !== null) { resolve(); return; }
    daemon.once('exit', () => resolve());
    daemon.kill('SIGTERM');
  });
}

async function api(method, p, body) {
  const res = await fetch(`${SB}/api/v1${p}`, {
    method,
    headers: { Authorization: `Bearer ${env.SB_TOKEN}`, 'Content-Type': 'application/json' },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let data = null;
  try { data = JSON.parse(text); } catch (e) { /* not JSON */ }
  return { status: res.status, data, text };
}

// The SSE stream: every event as {type, data} in `events`.
function openEvents() {
  const events = [];
  const ctl = new AbortController();
  (async () => {
    try {
      const res = await fetch(`${SB}/api/v1/events`, {
        headers: { Authorization: `Bearer ${env.SB_TOKEN}`, Accept: 'text/event-stream' }, signal: ctl.signal,
      });
      const dec = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body) {
        buf += dec.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let type = null, data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) type = line.slice(6).trim();
            else if (line.startsWith('data:')) data += line.slice(5).trim();
          }
          if (type) { try { events.push({ type, data: JSON.parse(data) }); } catch (e) { events.push({ type, data }); } }
        }
      }
    } catch (e) { /* aborted at the end, or the daemon restarted */ }
  })();
  return { events, close: () => ctl.abort() };
}

// --- the operator's site, on another origin -----------------------------------
const embeds = {};
function sitePage(channel, pre) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Acme shop</title></head>
<body><h1>Acme shop</h1>${pre || ''}
${embeds[channel] || ''}
</body></html>`;
}
function identity(userId) {
  return crypto.createHmac('sha256', env.IDENTITY_SECRET).update(userId).digest('hex');
}
const site = http.createServer((req, res) => {
  const u = new URL(req.url, PAGE);
  const channel = u.pathname.slice(1);
  let pre = '';
  if (u.searchParams.get('user')) {
    const id = u.searchParams.get('user');
    pre = `<script>window.switchboardChat = ${JSON.stringify({ userId: id, userHash: identity(id), name: 'Kim Verified', email: 'kim@example.com' })};</script>`;
  }
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(sitePage(channel, pre));
});

// --- the checks ------------------------------------------------------------------
async function conversationOf(channel) {
  const r = await api('GET', `/conversations?channel=${channel}`);
  return r.data && r.data.items && r.data.items[0];
}
async function messagesOf(id) {
  const r = await api('GET', `/conversations/${id}`);
  return (r.data && r.data.messages) || [];
}
const messageSel = '[data-switchboard="message"]';
async function texts(page, direction) {
  return page.$$eval(`${messageSel}[data-direction="${direction}"] .sbc-text`, (els) => els.map((e) => e.textContent));
}
async function sendFromWidget(page, text) {
  await page.fill('[data-switchboard="input"]', text);
  await page.click('[data-switchboard="send"]');
}
async function openPanel(page) {
  await page.waitForSelector('[data-switchboard="launcher"]', { state: 'visible', timeout: 10000 });
  if (!(await page.isVisible('[data-switchboard="panel"]'))) await page.click('[data-switchboard="launcher"]');
}
async function acked(page, text) {
  return waitFor(() => page.evaluate((t) => Array.from(document.querySelectorAll('[data-switchboard="message"][data-direction="in"]'))
    .some((e) => e.textContent.includes(t) && e.hasAttribute('data-id') && !e.hasAttribute('data-pending')), text), 10000);
}

async function main() {
  check('the daemon starts with the chat channels', await startDaemon());
  const ch = await api('GET', '/channels');
  for (const c of (ch.data && ch.data.items) || []) embeds[c.name] = c.embed;
  check('the API gives the chat channel\'s embed snippet',
    typeof embeds.web === 'string' && embeds.web === `<script src="${SB}/hooks/web/widget.js" async></script>`, ch.text);
  await new Promise((r) => site.listen(Number(env.PAGE_PORT), '127.0.0.1', r));

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sbchat-chromium-'));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const dialogs = [];
  browser.on('page', (p) => p.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); }));
  const sse = openEvents();
  try {
    await scenarios(browser, sse, dialogs);
  } finally {
    sse.close();
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
    site.close();
    await stopDaemon();
  }
}

async function scenarios(browser, sse, dialogs) {
  const page = await browser.newPage();
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  const sockets = [];
  page.on('websocket', (w) => sockets.push(w.url()));
  await page.goto(`${PAGE}/web`);
  const launcher = await page.waitForSelector('[data-switchboard="launcher"]', { state: 'visible', timeout: 10000 }).catch(() => null);
  check('availability always: the launcher shows on the operator\'s page', launcher !== null);
  if (!launcher) return;
  await launcher.click();
  check('the launcher opens the panel', await page.isVisible('[data-switchboard="panel"]'));
  const probe = await fetch(`${SB}/hooks/web/session`, { method: 'POST', headers: { Origin: PAGE }, body: '{}' });
  const hostSockets = ((await probe.json()).widget || {}).websocket === true;
  if (hostSockets) {
    check('the widget talks over a WebSocket', await waitFor(() => sockets.some((u) => u.includes('/hooks/web/ws?token=')), 5000),
      JSON.stringify(sockets));
  }

  // visitor → conversation (API and SSE)
  await sendFromWidget(page, 'Hello, I need help with my order');
  check('the visitor\'s message is acknowledged with its id', await acked(page, 'Hello, I need help'));
  const conv = await waitFor(() => conversationOf('web'));
  check('it arrives as a conversation on the chat channel (API)', conv && conv.channel === 'web', JSON.stringify(conv));
  if (!conv) return;
  const msgs = await messagesOf(conv.id);
  check('the conversation holds the text', msgs.some((m) => m.direction === 'in' && m.text === 'Hello, I need help with my order'),
    JSON.stringify(msgs));
  const ev = await waitFor(() => sse.events.find((e) => e.type === 'message.in' &&
    JSON.stringify(e.data).includes('Hello, I need help')), 5000);
  check('the event stream announces it (SSE message.in)', ev !== undefined && JSON.stringify(ev.data).includes('Hello, I need help'),
    JSON.stringify(sse.events.slice(-5)));

  // agent → page within a second
  const t0 = Date.now();
  const reply = await api('POST', `/conversations/${conv.id}/messages`, { text: 'Hi! Ana here, let me check.' });
  check('an agent replies through the API', reply.status === 202, reply.text);
  const shown = await waitFor(async () => (await texts(page, 'out')).includes('Hi! Ana here, let me check.'), 8000, 20);
  const took = Date.now() - t0;
  if (hostSockets) {
    check(`the reply appears in the page within a second (took ${took} ms)`, shown && took <= 1000);
  } else {
    // A daemon without plugin-held WebSockets (ABI 1.3 ws_*): the widget polls.
    console.log(`ok - # SKIP the reply within a second: this daemon holds no WebSockets for plugins; polled in ${took} ms`);
    check('without WebSockets the reply appears by polling within six seconds', shown && took <= 6000, took);
  }
  if (hostSockets) {
    const read = await waitFor(async () => (await messagesOf(conv.id))
      .some((m) => m.direction === 'out' && m.text === 'Hi! Ana here, let me check.' && m.status === 'read'), 5000, 100);
    check('the open panel reports the reply read (its status in the API is read)', read);
  }
  const author = await page.$eval(`${messageSel}[data-direction="out"] .sbc-author`, (e) => e.textContent).catch(() => null);
  check('the reply shows who answered', author === 'Support', author);

  // the XSS message renders literally, both ways
  const xss = '<img src=x onerror=alert(1)>';
  await sendFromWidget(page, xss);
  check('a visitor\'s <img onerror> message is acknowledged', await acked(page, xss));
  await api('POST', `/conversations/${conv.id}/messages`, { text: `${xss} (quoted)` });
  await waitFor(async () => (await texts(page, 'out')).includes(`${xss} (quoted)`), 8000);
  const inTexts = await texts(page, 'in');
  const outTexts = await texts(page, 'out');
  check('the <img onerror> text shows literally', inTexts.includes(xss) && outTexts.includes(`${xss} (quoted)`),
    JSON.stringify({ inTexts, outTexts }));
  const imgs = await page.$$eval('[data-switchboard="panel"] img[src="x"]', (els) => els.length);
  await sleep(300);
  check('no element was made from it and no dialog fired', imgs === 0 && dialogs.length === 0, JSON.stringify(dialogs));

  // an attachment, and one over the size limit
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');
  await page.setInputFiles('[data-switchboard="attach"]', { name: 'dot.png', mimeType: 'image/png', buffer: png });
  check('a visitor\'s attachment is acknowledged', await acked(page, 'dot.png'));
  const withFile = (await messagesOf(conv.id)).find((m) => (m.attachments || []).some((a) => a.filename === 'dot.png'));
  const att = withFile && withFile.attachments.find((a) => a.filename === 'dot.png');
  check('it is stored with its type and size', att && att.mime_type === 'image/png' && att.size === png.length,
    JSON.stringify(withFile));
  const before = (await messagesOf(conv.id)).length;
  await page.setInputFiles('[data-switchboard="attach"]', { name: 'big.png', mimeType: 'image/png', buffer: Buffer.alloc(600 * 1024) });
  await sleep(500);
  const notice = await page.textContent('[data-switchboard="notice"]');
  check('a file over max_attachment_bytes is refused in the page, nothing sent',
    notice === 'That file is too large.' && (await messagesOf(conv.id)).length === before, notice);

  // a reload shows the history, each message once
  await page.reload();
  await openPanel(page);
  const history = await waitFor(async () => {
    const all = [...await texts(page, 'in'), ...await texts(page, 'out')];
    return all.length >= 4 ? all : null;
  }, 8000);
  const count = (t) => (history || []).filter((x) => x === t).length;
  check('after a reload the history is shown, each message once',
    history && count('Hello, I need help with my order') === 1 && count('Hi! Ana here, let me check.') === 1 && count(xss) === 1,
    JSON.stringify(history));

  // network loss: the daemon goes away, the visitor writes, it comes back
  await stopDaemon();
  await sleep(300);
  await sendFromWidget(page, 'Are you still there?');
  await sleep(500);
  const waiting = await page.evaluate(() => Array.from(document.querySelectorAll('[data-switchboard="message"][data-pending]')).length);
  check('while the connection is down the message waits in the page', waiting === 1);
  check('the daemon comes back', await startDaemon());
  check('after reconnecting the waiting message is delivered', await acked(page, 'Are you still there?'));
  const again = await api('POST', `/conversations/${conv.id}/messages`, { text: 'Yes, still here.' });
  check('a reply after the reconnect is accepted', again.status === 202, again.text);
  check('... and reaches the page', await waitFor(async () => (await texts(page, 'out')).includes('Yes, still here.'), 8000));
  const after = await messagesOf(conv.id);
  check('nothing was lost or stored twice',
    after.filter((m) => m.text === 'Are you still there?').length === 1 && after.filter((m) => m.direction === 'in').length === 4,
    JSON.stringify(after.map((m) => [m.direction, m.text])));
  const shownTwice = (await texts(page, 'in')).filter((t) => t === 'Are you still there?').length;
  check('... nor shown twice in the page', shownTwice === 1);

  // a disallowed origin is refused: no widget, no socket
  const direct = await fetch(`${SB}/hooks/strict/session`, { method: 'POST', headers: { Origin: PAGE }, body: '{}' });
  check('a session from an origin the channel does not allow is refused (403, no CORS header)',
    direct.status === 403 && !direct.headers.get('access-control-allow-origin'), direct.status);
  const strict = await browser.newPage();
  const outcome = new Promise((resolve) => {
    strict.on('requestfailed', (r) => { if (r.url().endsWith('/hooks/strict/session')) resolve('blocked'); });
    strict.on('response', (r) => { if (r.url().endsWith('/hooks/strict/session')) resolve(String(r.status())); });
    setTimeout(() => resolve('nothing'), 10000);
  });
  await strict.goto(`${PAGE}/strict`);
  const seenByPage = await outcome;
  check('the page on that origin cannot use the answer', seenByPage === 'blocked' || seenByPage === '403', seenByPage);
  await sleep(300);
  check('... and shows no launcher', (await strict.$('[data-switchboard="launcher"]')) === null);
  const wsResult = await strict.evaluate((url) => new Promise((resolve) => {
    const s = new WebSocket(url);
    s.onopen = () => resolve('open');
    s.onclose = () => resolve('closed');
  }), `${SB.replace('http', 'ws')}/hooks/web/ws?token=x`);
  check('... and its WebSocket is refused', wsResult === 'closed', wsResult);
  await strict.close();

  // availability: users mode with nobody available hides or explains
  for (const [channel, visible, name] of [
    ['away_hidden', false, 'users mode, nobody available, away_behavior hide: no launcher'],
    ['away_notice', true, 'users mode, nobody available, away_behavior away_message: launcher and the message'],
  ]) {
    const p = await browser.newPage();
    const got = p.waitForResponse((r) => r.url().endsWith(`/hooks/${channel}/session`), { timeout: 10000 }).catch(() => null);
    await p.goto(`${PAGE}/${channel}`);
    const r = await got;
    const root = await p.waitForSelector('[data-switchboard="root"]', { state: 'attached', timeout: 10000 }).catch(() => null);
    const shownNow = await p.isVisible('[data-switchboard="launcher"]');
    let detail = r ? `${r.status()} ${await r.text()}` : 'no session answer';
    if (visible && shownNow) {
      await p.click('[data-switchboard="launcher"]');
      const notice = await p.textContent('[data-switchboard="notice"]');
      check(name, notice === 'Back at nine.', notice);
    } else {
      check(name, root !== null && shownNow === visible, detail);
    }
    await p.close();
  }

  // verified identity: the same user on another device sees the same conversation
  const v1 = await browser.newPage();
  await v1.goto(`${PAGE}/web?user=user-42`);
  await openPanel(v1);
  await sendFromWidget(v1, 'Message from my laptop');
  check('a verified visitor\'s message is acknowledged', await acked(v1, 'Message from my laptop'));
  const other = await chromium.launch({
    executablePath: '/usr/bin/chromium', headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const phone = await (await other.newContext()).newPage();
  await phone.goto(`${PAGE}/web?user=user-42`);
  await openPanel(phone);
  const seenOnPhone = await waitFor(async () => (await texts(phone, 'in')).includes('Message from my laptop'), 8000);
  check('the same verified user on another device sees that conversation', seenOnPhone);
  await other.close();
  const contacts = await api('GET', '/contacts');
  check('the verified user is one contact with the email the site gave',
    contacts.data && contacts.data.items.some((c) => c.email === 'kim@example.com'), contacts.text);
}

main().catch((e) => { failed++; console.log(`not ok - the browser test ran to the end\n# ${e.stack}`); })
  .finally(async () => {
    await stopDaemon();
    console.log(`${passed} passed, ${failed} failed`);
    process.exit(failed === 0 ? 0 : 1);
  });
