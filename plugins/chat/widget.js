/* Switchboard website chat widget — served by the chat channel at
 * /hooks/{channel}/widget.js; no dependencies. Add it to a page with:
 *   <script src="https://HELPDESK/hooks/CHANNEL/widget.js" async></script>
 * Optional, before it (verified identity, see docs/channels/chat.md):
 *   <script>window.switchboardChat = {userId: "42", userHash: "<hex HMAC>", name: "Kim", email: "kim@example.com"};</script>
 *
 * Stable hooks for tests and CSS: data-switchboard="launcher", "panel",
 * "input", "send", "message" (data-direction="in" for the visitor's own
 * messages, "out" for the team's), plus "heading", "notice", "email",
 * "attach", "welcome". Message text is always set with textContent. */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script || !script.src || window.__switchboardChatLoaded) return;
  window.__switchboardChatLoaded = true;
  var base = script.src.replace(/\/widget\.js(\?.*)?$/, '');
  var opts = window.switchboardChat || {};
  var storeKey = 'switchboard-chat:' + base;

  /* --- state kept across page loads ----------------------------------- */
  function load() {
    try { return JSON.parse(localStorage.getItem(storeKey)) || {}; } catch (e) { return {}; }
  }
  var saved = load();
  function save() {
    try {
      localStorage.setItem(storeKey, JSON.stringify({
        token: saved.token, email: saved.email, open: saved.open,
        pending: pending.filter(function (p) { return !p.attachments; })
      }));
    } catch (e) { /* private mode or full: the chat still works for this page */ }
  }
  var pending = (saved.pending || []).slice(0, 50); /* sent, not yet acknowledged */
  var lastId = null;        /* the newest message id shown */
  var byId = {};            /* message id -> element */
  var byClient = {};        /* client id -> element */
  var widget = null, token = null, ws = null, wsOpen = false, retry = 0, timer = null, pingTimer = null;
  var pollTimer = null, ui = null, owner = null;

  function newClientId() {
    var a = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ('0' + b.toString(16)).slice(-2); }).join('');
  }

  function request(method, path, body, cb) {
    var x = new XMLHttpRequest();
    x.open(method, base + path);
    if (token) x.setRequestHeader('Authorization', 'Bearer ' + token);
    x.onload = function () {
      var data = null;
      try { data = JSON.parse(x.responseText); } catch (e) { /* not JSON */ }
      cb(x.status, data);
    };
    x.onerror = function () { cb(0, null); };
    /* text/plain keeps it a "simple" CORS request: no preflight round trip */
    if (body !== undefined) x.setRequestHeader('Content-Type', 'text/plain');
    x.send(body !== undefined ? JSON.stringify(body) : null);
  }

  /* --- the page's elements ------------------------------------------------ */
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function safeUrl(u) { return typeof u === 'string' && /^https?:\/\//i.test(u) ? u : null; }
  // A file the help desk holds comes as the daemon's signed link, /files/...
  function fileUrl(u) {
    return typeof u === 'string' && /^\/files\/\d+\?/.test(u) ? base.replace(/^(https?:\/\/[^\/]+).*$/i, '$1') + u : safeUrl(u);
  }

  function css(accent) {
    var a = /^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$/.test(accent || '') ? accent : '#2f6fed';
    return '.sbc-root{position:fixed;right:20px;bottom:20px;z-index:2147483000;font:14px/1.4 system-ui,sans-serif;color:#222}' +
      '.sbc-launcher{width:56px;height:56px;border-radius:50%;border:0;background:' + a + ';color:#fff;font-size:24px;cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.3)}' +
      '.sbc-panel{position:absolute;right:0;bottom:68px;width:340px;max-width:calc(100vw - 40px);height:460px;max-height:calc(100vh - 100px);background:#fff;border-radius:10px;box-shadow:0 4px 24px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden}' +
      '.sbc-panel[hidden]{display:none}' +
      '.sbc-head{background:' + a + ';color:#fff;padding:12px;display:flex;align-items:center;gap:8px;font-weight:600}' +
      '.sbc-head img{width:32px;height:32px;border-radius:50%}' +
      '.sbc-notice{background:#fff7e0;padding:8px 12px;font-size:13px}' +
      '.sbc-list{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:6px}' +
      '.sbc-msg{max-width:80%;padding:8px 10px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word}' +
      '.sbc-msg[data-direction=in]{align-self:flex-end;background:' + a + ';color:#fff}' +
      '.sbc-msg[data-direction=out],.sbc-welcome{align-self:flex-start;background:#f0f0f3}' +
      '.sbc-msg[data-pending]{opacity:.6}' +
      '.sbc-author{font-size:11px;opacity:.7;display:flex;align-items:center;gap:4px}' +
      '.sbc-author img{width:16px;height:16px;border-radius:50%}' +
      '.sbc-att{display:block;font-size:12px;color:inherit}' +
      '.sbc-form{display:flex;gap:6px;padding:8px;border-top:1px solid #eee;align-items:flex-end}' +
      '.sbc-form textarea{flex:1;resize:none;height:38px;border:1px solid #ccc;border-radius:6px;padding:6px;font:inherit}' +
      '.sbc-form button{border:0;border-radius:6px;background:' + a + ';color:#fff;padding:8px 10px;cursor:pointer}' +
      '.sbc-email{margin:0 8px 8px;padding:6px;border:1px solid #ccc;border-radius:6px;font:inherit}';
  }

  function headingText() {
    if (widget.heading === 'contact_owner' && owner && owner.name) return owner.name;
    return widget.heading_name || 'Chat';
  }
  function headingAvatar() {
    if (widget.heading === 'contact_owner' && owner) return safeUrl(owner.avatar_url);
    if (widget.heading === 'user') return safeUrl(widget.heading_avatar_url);
    return null;
  }

  function noticeText() {
    if (widget.notice) return widget.notice;
    if (widget.show_reply_time) {
      var s = widget.reply_time_seconds;
      if (typeof s !== 'number') return 'We will reply as soon as we can.';
      if (s < 120) return 'We typically reply in a minute or two.';
      if (s < 3600) return 'We typically reply in ' + Math.round(s / 60) + ' minutes.';
      if (s < 86400) return 'We typically reply in ' + Math.round(s / 3600) + ' hours.';
      return 'We typically reply within a day or two.';
    }
    return '';
  }

  function build() {
    var style = el('style');
    style.textContent = css(widget.accent_color);
    document.head.appendChild(style);
    var root = el('div', {'class': 'sbc-root', 'data-switchboard': 'root'});
    var launcher = el('button', {'class': 'sbc-launcher', 'type': 'button', 'data-switchboard': 'launcher',
      'aria-label': 'Chat with us'}, '\u{1F4AC}');
    var panel = el('div', {'class': 'sbc-panel', 'data-switchboard': 'panel', 'role': 'dialog', 'hidden': ''});
    var head = el('div', {'class': 'sbc-head', 'data-switchboard': 'heading'});
    var avatar = el('img', {'alt': ''});
    var title = el('span');
    head.appendChild(avatar);
    head.appendChild(title);
    var notice = el('div', {'class': 'sbc-notice', 'data-switchboard': 'notice'});
    var list = el('div', {'class': 'sbc-list', 'aria-live': 'polite'});
    var welcome = el('div', {'class': 'sbc-msg sbc-welcome', 'data-switchboard': 'welcome'}, widget.welcome_message || '');
    if (widget.welcome_message) list.appendChild(welcome);
    var email = el('input', {'class': 'sbc-email', 'type': 'email', 'data-switchboard': 'email',
      'placeholder': 'Your email, so we can answer by email'});
    email.value = saved.email || opts.email || '';
    email.addEventListener('change', function () { saved.email = email.value.trim() || undefined; save(); });
    var form = el('form', {'class': 'sbc-form'});
    var input = el('textarea', {'data-switchboard': 'input', 'placeholder': 'Write a message…', 'aria-label': 'Message'});
    var file = el('input', {'type': 'file', 'data-switchboard': 'attach', 'hidden': '',
      'accept': (widget.attachment_types || []).join(',')});
    var clip = el('button', {'type': 'button', 'aria-label': 'Attach a file'}, '\u{1F4CE}');
    var send = el('button', {'type': 'submit', 'data-switchboard': 'send'}, 'Send');
    if (widget.max_attachment_bytes > 0) { form.appendChild(clip); form.appendChild(file); }
    form.appendChild(input);
    form.appendChild(send);
    panel.appendChild(head);
    panel.appendChild(notice);
    panel.appendChild(list);
    panel.appendChild(email);
    panel.appendChild(form);
    root.appendChild(panel);
    root.appendChild(launcher);
    document.body.appendChild(root);
    ui = {root: root, launcher: launcher, panel: panel, title: title, avatar: avatar, notice: notice, list: list,
      email: email, input: input, file: file};

    launcher.addEventListener('click', function () { setOpen(panel.hasAttribute('hidden')); });
    clip.addEventListener('click', function () { file.click(); });
    file.addEventListener('change', function () {
      var f = file.files && file.files[0];
      file.value = '';
      if (f) attach(f);
    });
    form.addEventListener('submit', function (e) { e.preventDefault(); submit(); });
    input.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); submit(); }
    });
    refresh();
    if (saved.open) setOpen(true);
  }

  function refresh() {
    ui.title.textContent = headingText();
    var av = headingAvatar();
    if (av) { ui.avatar.src = av; ui.avatar.hidden = false; } else { ui.avatar.removeAttribute('src'); ui.avatar.hidden = true; }
    var n = noticeText();
    ui.notice.textContent = n;
    ui.notice.hidden = !n;
    ui.email.hidden = !(widget.ask_email && !opts.userId);
    ui.root.hidden = !widget.launcher && ui.panel.hasAttribute('hidden');
  }

  function setOpen(open) {
    if (open) { ui.panel.removeAttribute('hidden'); ui.input.focus(); seen('read'); }
    else ui.panel.setAttribute('hidden', '');
    saved.open = open;
    save();
  }

  /* --- messages on screen ----------------------------------------------------- */
  function render(m, isPending) {
    var node = (m.id && byId[m.id]) || (m.client_id && byClient[m.client_id]);
    if (node) { /* already shown: an ack, an echo or a history repeat — only learn its id */
      if (m.id && !node.getAttribute('data-id')) { node.setAttribute('data-id', m.id); byId[m.id] = node; }
      if (!isPending) node.removeAttribute('data-pending');
      noteId(m.id);
      return node;
    }
    node = el('div', {'class': 'sbc-msg', 'data-switchboard': 'message',
      'data-direction': m.direction === 'out' ? 'out' : 'in'});
    if (m.direction === 'out' && m.author && m.author.name) {
      var by = el('div', {'class': 'sbc-author'});
      var pic = safeUrl(m.author.avatar_url);
      if (pic) by.appendChild(el('img', {'src': pic, 'alt': ''}));
      by.appendChild(el('span', {}, m.author.name));
      node.appendChild(by);
    }
    if (m.text) node.appendChild(el('div', {'class': 'sbc-text'}, m.text));
    (m.attachments || []).forEach(function (a) {
      var label = '\u{1F4CE} ' + (a.filename || 'attachment');
      var href = fileUrl(a.url);
      var link = el(href ? 'a' : 'span', href ? {'class': 'sbc-att', 'href': href, 'target': '_blank', 'rel': 'noopener noreferrer'} : {'class': 'sbc-att'}, label);
      node.appendChild(link);
    });
    if (m.id) { node.setAttribute('data-id', m.id); byId[m.id] = node; }
    if (m.client_id) { node.setAttribute('data-client-id', m.client_id); byClient[m.client_id] = node; }
    if (isPending) node.setAttribute('data-pending', '');
    ui.list.appendChild(node);
    ui.list.scrollTop = ui.list.scrollHeight;
    noteId(m.id);
    return node;
  }

  function noteId(id) {
    if (id && /^\d+$/.test(String(id)) && (lastId === null || Number(id) > Number(lastId))) lastId = String(id);
  }

  function received(m) {
    var fresh = !(m.id && byId[m.id]);
    if (m.direction === 'in' && m.client_id && m.id) { /* stored, though its ack never came */
      var before = pending.length;
      pending = pending.filter(function (p) { return p.client_id !== m.client_id; });
      if (pending.length !== before) save();
    }
    render(m, false);
    if (fresh && m.direction === 'out') seen(ui.panel.hasAttribute('hidden') || document.hidden ? 'delivered' : 'read');
  }

  var seenTimer = null, seenWant = null;
  function seen(status) {
    if (seenWant !== 'read') seenWant = status;
    if (seenTimer) return;
    seenTimer = setTimeout(function () {
      seenTimer = null;
      var s = seenWant;
      seenWant = null;
      if (wsOpen) ws.send(JSON.stringify({type: 'seen', status: s}));
      else if (token) request('POST', '/messages', {type: 'seen', status: s}, function () {});
    }, 1100); /* the channel takes one receipt a second per socket (per visitor without one) */
  }

  /* --- sending ---------------------------------------------------------------------- */
  function submit() {
    var text = ui.input.value.replace(/^\s+|\s+$/g, '');
    if (!text) return;
    if (widget.max_message_bytes && new Blob([text]).size > widget.max_message_bytes) {
      flash('That message is too long.');
      return;
    }
    ui.input.value = '';
    queue({client_id: newClientId(), text: text});
  }

  function attach(f) {
    if (f.size > widget.max_attachment_bytes) { flash('That file is too large.'); return; }
    if ((widget.attachment_types || []).indexOf(f.type) < 0) { flash('That kind of file cannot be sent here.'); return; }
    var r = new FileReader();
    r.onload = function () {
      var data = String(r.result).replace(/^data:[^,]*,/, '');
      queue({client_id: newClientId(), attachments: [{filename: f.name, mime_type: f.type, data: data}]});
    };
    r.readAsDataURL(f);
  }

  function flash(text) {
    ui.notice.textContent = text;
    ui.notice.hidden = false;
    setTimeout(refresh, 4000);
  }

  function queue(p) {
    if (ui.email.value && !opts.userId) p.email = ui.email.value.trim();
    pending.push(p);
    save();
    render({client_id: p.client_id, direction: 'in', text: p.text,
      attachments: (p.attachments || []).map(function (a) { return {filename: a.filename}; })}, true);
    transmit(p);
  }

  function frameOf(p) {
    var f = {type: 'message', client_id: p.client_id, page: location.href.slice(0, 1000)};
    if (p.text) f.text = p.text;
    if (p.attachments) f.attachments = p.attachments;
    if (p.email) f.email = p.email;
    if (opts.name) f.name = String(opts.name);
    if (opts.email && opts.userId) f.email = String(opts.email);
    return f;
  }

  function transmit(p) {
    if (wsOpen) { ws.send(JSON.stringify(frameOf(p))); return; }
    if (widget.websocket) return; /* sent when the socket is back */
    request('POST', '/messages', frameOf(p), function (status, data) {
      if (status === 200 && data) acked(data);
      else if (status === 429 || status === 0 || status >= 500) setTimeout(function () { transmit(p); }, 3000);
      else failed(p.client_id, data && data.error ? data.error.message : 'not sent');
    });
  }

  function acked(a) {
    pending = pending.filter(function (p) { return p.client_id !== a.client_id; });
    save();
    if (byClient[a.client_id]) render({id: a.id, client_id: a.client_id, direction: 'in'}, false);
    else noteId(a.id);
  }

  function failed(clientId, why) {
    var node = byClient[clientId];
    pending = pending.filter(function (p) { return p.client_id !== clientId; });
    save();
    if (node) { node.removeAttribute('data-pending'); node.setAttribute('data-failed', ''); node.title = why; }
  }

  /* --- the connection ----------------------------------------------------------------- */
  function history(frame) {
    if (frame.owner) { owner = frame.owner; refresh(); }
    (frame.messages || []).forEach(function (m) { received(m); });
    /* messages still waiting for their ack stay last, after the history */
    pending.forEach(function (p) {
      var node = byClient[p.client_id];
      if (node && node.hasAttribute('data-pending')) ui.list.appendChild(node);
    });
  }

  function onFrame(f) {
    if (f.type === 'history') history(f);
    else if (f.type === 'message') received(f);
    else if (f.type === 'ack') acked(f);
    else if (f.type === 'error' && f.client_id) {
      if (f.code === 'rate_limited' || f.code === 'unavailable') {
        var p = pending.filter(function (q) { return q.client_id === f.client_id; })[0];
        if (p) setTimeout(function () { transmit(p); }, 5000);
      } else failed(f.client_id, f.message);
    } else if (f.type === 'pong') pongDue = 0;
  }

  var pongDue = 0;
  function connect() {
    clearTimeout(timer);
    if (ws || !widget.websocket) return;
    var url = base.replace(/^http/, 'ws') + '/ws?token=' + encodeURIComponent(token);
    var sock = new WebSocket(url);
    ws = sock;
    sock.onopen = function () {
      wsOpen = true;
      retry = 0;
      sock.send(JSON.stringify({type: 'hello', after: lastId}));
      pending.forEach(function (p) { sock.send(JSON.stringify(frameOf(p))); });
      pingTimer = setInterval(function () {
        if (pongDue && Date.now() > pongDue) { sock.close(); return; }
        if (!pongDue) pongDue = Date.now() + 10000;
        sock.send(JSON.stringify({type: 'ping'}));
      }, 25000);
    };
    sock.onmessage = function (e) {
      var f = null;
      try { f = JSON.parse(e.data); } catch (err) { return; }
      if (f && typeof f === 'object') onFrame(f);
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      wsOpen = false;
      pongDue = 0;
      clearInterval(pingTimer);
      retry = Math.min(retry + 1, 5);
      timer = setTimeout(connect, Math.min(1000 * Math.pow(2, retry - 1), 15000));
    };
  }

  function poll() { /* without WebSockets: read what is new every few seconds */
    request('GET', '/messages' + (lastId ? '?after=' + encodeURIComponent(lastId) : ''), undefined, function (status, data) {
      if (status === 200 && data) history(data);
      pollTimer = setTimeout(poll, 5000);
    });
    pending.forEach(transmit);
  }

  window.addEventListener('online', function () { if (!ws && widget && widget.websocket) connect(); });
  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && ui && !ui.panel.hasAttribute('hidden')) seen('read');
  });

  function session() {
    var body = {};
    if (opts.userId && opts.userHash) { body.user_id = String(opts.userId); body.user_hash = String(opts.userHash); }
    else if (saved.token) body.token = saved.token;
    request('POST', '/session', body, function (status, data) {
      if (status !== 200 || !data || !data.token) {
        if (status === 0 || status >= 500) setTimeout(session, 10000);
        return; /* refused (origin, identity): no widget on this page */
      }
      var first = !widget;
      token = data.token;
      widget = data.widget || {};
      if (!opts.userId) { saved.token = token; save(); }
      if (first) {
        build();
        pending.forEach(function (p) {
          render({client_id: p.client_id, direction: 'in', text: p.text}, true);
        });
        if (widget.websocket) connect(); else poll();
      } else refresh();
      setTimeout(session, 60000); /* availability changes: show, hide, notices */
    });
  }

  if (document.body) session();
  else document.addEventListener('DOMContentLoaded', session);
})();
