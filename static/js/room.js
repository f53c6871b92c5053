// The room page: a client of the room websocket's extended dialect (docs/protocol.md).
//
// Nothing lost, nothing twice: every stored message is shown once, in id order (anything at
// or below the highest id shown is ignored), and a reconnect resumes with ?since=<that id>.
// Outgoing messages wait in an outbox, shown as "sending…" bubbles, until their echo (the
// chat_message carrying their client_id) arrives; after a reconnect the ones still waiting
// are sent again once the replayed history has been read, since it may hold their echo.
//
// User data only ever reaches the page through textContent and attributes, never as HTML.
//
// The page is also logged in for calls under the same name (calls.js): members who are
// online for calls get a Call button, and an incoming call rings here.

import { CallClient, mountCallPanel } from './calls.js';

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const TYPING_SHOWN_MS = 4_000;
const ERROR_SHOWN_MS = 6_000;
const NEAR_BOTTOM_PX = 96;
const REJOIN_QUIET_MS = 15_000; // after a reconnect, people who were here "rejoin" silently
const GROUP_WITHIN_MS = 5 * 60_000;
const SVG = 'http://www.w3.org/2000/svg';
const INPUT_MAX_HEIGHT_PX = 160;

const STATES = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

const root = document.querySelector('main.room');
const room = root.dataset.room;
const me = root.dataset.user;
const protocol = root.dataset.protocol;
// A little over the server's typing interval, so that network jitter never makes the server
// drop a notice as too early.
const typingIntervalMs = (Number(root.dataset.typingInterval) || 2) * 1000 + 250;

const $ = (id) => document.getElementById(id);
const ui = {
  state: $('connection-state'),
  stateText: $('connection-state').querySelector('.state-text'),
  members: $('members'),
  memberCount: $('member-count'),
  messages: $('messages'),
  empty: $('empty-room'),
  typing: $('typing'),
  error: $('send-error'),
  form: $('message-form'),
  input: $('message-input'),
};

let socket = null;
let serial = 0; // which socket a pending message was last sent on
let lastId = 0; // highest chat_message id shown
let resuming = false; // a history event was read: reconnect with ?since=lastId
let historyDone = false;
let backoffMs = BACKOFF_START_MS;
let retryTimer = 0;
let unloading = false;
let lastTypingSent = 0;
let typingTimer = 0;
let errorTimer = 0;
let members = [];
let rejoining = new Set();
let rejoinTimer = 0;
const outbox = new Map(); // client_id -> {clientId, text, el, sentOn, ...}, oldest first
const failed = new Map(); // client_id -> the same, refused by the server
const typists = new Map(); // user -> timer that forgets them

// -- connection ---------------------------------------------------------------------------

function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const path = `/ws/room/${encodeURIComponent(room)}/${encodeURIComponent(me)}/`;
  return `${scheme}://${location.host}${path}${resuming ? `?since=${lastId}` : ''}`;
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = 0;
  if (unloading || (socket && socket.readyState <= WebSocket.OPEN)) return;
  const ws = new WebSocket(socketUrl(), [protocol]);
  socket = ws;
  serial += 1;
  historyDone = false;
  ws.addEventListener('open', () => {
    if (ws !== socket) return;
    backoffMs = BACKOFF_START_MS;
    setState(navigator.onLine === false ? 'offline' : 'connected');
    clearTimeout(rejoinTimer);
    rejoinTimer = setTimeout(() => rejoining.clear(), REJOIN_QUIET_MS);
  });
  ws.addEventListener('message', (event) => {
    if (ws === socket) onFrame(event.data);
  });
  ws.addEventListener('close', () => {
    if (ws !== socket) return;
    socket = null;
    onClosed();
  });
}

function onClosed() {
  for (const timer of typists.values()) clearTimeout(timer);
  typists.clear();
  renderTyping();
  if (unloading) return;
  rejoining = new Set(members);
  setState(navigator.onLine === false ? 'offline' : 'reconnecting');
  scheduleReconnect();
}

function scheduleReconnect() {
  clearTimeout(retryTimer);
  const delay = Math.min(BACKOFF_MAX_MS, backoffMs * (0.75 + Math.random() * 0.5)); // jitter
  backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
  retryTimer = setTimeout(connect, delay);
}

function reconnectNow() {
  if (socket || unloading) return;
  backoffMs = BACKOFF_START_MS;
  connect();
}

function isOpen() {
  return socket !== null && socket.readyState === WebSocket.OPEN;
}

function setState(state) {
  ui.state.dataset.state = state;
  ui.stateText.textContent = STATES[state];
  root.dataset.connection = state;
}

// -- inbound ------------------------------------------------------------------------------

function onFrame(text) {
  let event;
  try {
    event = JSON.parse(text);
  } catch {
    return;
  }
  if (!event || typeof event !== 'object') return;
  if (!historyDone && event.type !== 'presence' && event.type !== 'history') finishHistory();
  switch (event.type) {
    case 'presence':
      setMembers(event.members);
      break;
    case 'history':
      onHistory(event.messages, event.complete);
      break;
    case 'chat_message':
      onChatMessage(event);
      break;
    case 'member_joined':
      onMemberJoined(event.user, event.datetime);
      break;
    case 'member_left':
      onMemberLeft(event.user, event.datetime);
      break;
    case 'typing':
      onTyping(event.user);
      break;
    case 'error':
      onError(event.message, event.client_id);
      break;
    default:
      break; // a newer server's event: ignore
  }
}

/** A page of the replay; after the last one (`complete`), queued messages are (re)sent. */
function onHistory(messages, complete) {
  const first = !resuming;
  resuming = true;
  const stick = first || nearBottom();
  for (const message of messages || []) addMessage(message);
  if (stick) scrollToBottom();
  if (complete) finishHistory();
}

function finishHistory() {
  if (historyDone) return;
  historyDone = true;
  updateEmpty();
  for (const entry of outbox.values()) transmit(entry);
}

function onChatMessage(message) {
  const stick = nearBottom() || (message.user === me && outbox.has(message.client_id));
  if (!addMessage(message)) return;
  forgetTypist(message.user);
  if (stick) scrollToBottom();
}

/** The server refused a frame; when it names one of our messages, mark that one. */
function onError(text, clientId) {
  showError(text || 'Something went wrong.');
  const entry = clientId ? outbox.get(clientId) : undefined;
  if (entry) markFailed(entry, text);
}

// -- messages -----------------------------------------------------------------------------

/** Show a stored message unless its id was shown already; return whether it was added. */
function addMessage(message) {
  if (!message || !Number.isInteger(message.id) || message.id <= lastId) return false;
  lastId = message.id;
  const own = message.user === me;
  if (own && message.client_id) dropLocal(message.client_id);
  const item = bubble({
    own, user: message.user, text: String(message.message ?? ''), iso: message.datetime,
  });
  item.dataset.id = String(message.id);
  const previous = lastStored();
  if (previous && previous.dataset.user === message.user
      && Date.parse(message.datetime) - Date.parse(previous.dataset.datetime) < GROUP_WITHIN_MS) {
    item.classList.add('continued');
  }
  insertStored(item);
  updateEmpty();
  return true;
}

function bubble({ own, user, text, iso, status }) {
  const item = document.createElement('div');
  item.className = `message ${own ? 'own' : 'other'}`;
  item.dataset.user = user;
  if (iso) item.dataset.datetime = iso;

  const meta = document.createElement('div');
  meta.className = 'meta';
  const author = document.createElement('span');
  author.className = 'author';
  author.textContent = own ? 'You' : user;
  meta.append(author);

  const body = document.createElement('p');
  body.className = 'text';
  body.textContent = text;

  const time = document.createElement('time');
  time.className = 'time';
  if (iso) {
    const date = new Date(iso);
    if (!Number.isNaN(date.getTime())) {
      time.dateTime = iso;
      time.textContent = shortTime(date);
      time.title = date.toLocaleString([], { dateStyle: 'full', timeStyle: 'medium' });
    }
  } else {
    time.textContent = status;
  }
  meta.append(time);
  item.append(meta, body);
  return item;
}

function shortTime(date) {
  const time = date.toLocaleTimeString([], { hour: 'numeric', minute: '2-digit' });
  if (date.toDateString() === new Date().toDateString()) return time;
  return `${date.toLocaleDateString([], { month: 'short', day: 'numeric' })}, ${time}`;
}

/** Stored messages and notices go above the local (pending or failed) bubbles. */
function insertStored(item) {
  ui.messages.insertBefore(item, ui.messages.querySelector(':scope > .local'));
}

function lastStored() {
  const items = ui.messages.querySelectorAll(':scope > .message[data-id]');
  const last = items[items.length - 1];
  return last && last.nextElementSibling?.classList.contains('notice') ? null : last;
}

function notice(text, iso) {
  const item = document.createElement('div');
  item.setAttribute('role', 'note');
  item.className = 'notice';
  item.textContent = text;
  if (iso) item.title = new Date(iso).toLocaleString();
  const stick = nearBottom();
  insertStored(item);
  if (stick) scrollToBottom();
}

function updateEmpty() {
  ui.empty.hidden = !historyDone || ui.messages.querySelector('.message') !== null;
}

function nearBottom() {
  const list = ui.messages;
  return list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_BOTTOM_PX;
}

function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

// -- outbox -------------------------------------------------------------------------------

function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function post(text) {
  const entry = { clientId: newClientId(), text, el: null, sentOn: 0 };
  entry.el = bubble({ own: true, user: me, text, status: 'Sending…' });
  entry.el.classList.add('local', 'pending');
  entry.el.dataset.clientId = entry.clientId;
  ui.messages.append(entry.el);
  outbox.set(entry.clientId, entry);
  updateEmpty();
  scrollToBottom();
  transmit(entry);
}

/** Send an outbox entry now if this socket is open and has replayed its history. */
function transmit(entry) {
  if (!isOpen() || !historyDone || entry.sentOn === serial) return;
  socket.send(JSON.stringify({ type: 'message', message: entry.text, client_id: entry.clientId }));
  entry.sentOn = serial;
}

function dropLocal(clientId) {
  const entry = outbox.get(clientId) || failed.get(clientId);
  if (!entry) return;
  outbox.delete(clientId);
  failed.delete(clientId);
  entry.el.remove();
}

function markFailed(entry, reason) {
  outbox.delete(entry.clientId);
  failed.set(entry.clientId, entry);
  entry.el.classList.replace('pending', 'failed');
  const status = entry.el.querySelector('.time');
  status.textContent = 'Not sent';
  status.title = reason || '';
  const actions = document.createElement('span');
  actions.className = 'actions';
  const retry = document.createElement('button');
  retry.type = 'button';
  retry.className = 'link-button';
  retry.textContent = 'Retry';
  retry.addEventListener('click', () => {
    failed.delete(entry.clientId);
    actions.remove();
    status.textContent = 'Sending…';
    status.title = '';
    entry.el.classList.replace('failed', 'pending');
    entry.sentOn = 0;
    ui.messages.append(entry.el);
    outbox.set(entry.clientId, entry);
    transmit(entry);
  });
  const discard = document.createElement('button');
  discard.type = 'button';
  discard.className = 'link-button';
  discard.textContent = 'Discard';
  discard.addEventListener('click', () => {
    failed.delete(entry.clientId);
    entry.el.remove();
    updateEmpty();
    ui.input.focus();
  });
  actions.append(retry, discard);
  entry.el.querySelector('.meta').append(actions);
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => {
    ui.error.hidden = true;
    ui.error.textContent = '';
  }, ERROR_SHOWN_MS);
}

// -- members and typing -------------------------------------------------------------------

function setMembers(names) {
  members = Array.isArray(names) ? names.map(String) : [];
  renderMembers();
}

function onMemberJoined(user, iso) {
  if (!members.includes(user)) {
    members.push(user);
    renderMembers();
  }
  if (user !== me && !rejoining.has(user)) notice(`${user} joined`, iso);
  rejoining.delete(user);
}

function onMemberLeft(user, iso) {
  forgetTypist(user);
  if (user === me) return; // another tab of ours closed; this one is still here
  members = members.filter((name) => name !== user);
  renderMembers();
  notice(`${user} left`, iso);
}

function renderMembers() {
  members.sort((a, b) => a.localeCompare(b, undefined, { sensitivity: 'base' }));
  const items = members.map((name) => {
    const item = document.createElement('li');
    item.className = name === me ? 'member me' : 'member';
    item.dataset.user = name;
    const avatar = document.createElement('span');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    avatar.textContent = initial(name);
    avatar.style.setProperty('--hue', String(hue(name)));
    const label = document.createElement('span');
    label.className = 'member-name';
    label.textContent = name;
    item.append(avatar, label);
    if (name === me) {
      const you = document.createElement('span');
      you.className = 'you';
      you.textContent = '(you)';
      item.append(' ', you);
    } else if (calls.directory.has(name)) {
      item.append(callButton(name));
    }
    return item;
  });
  const focused = document.activeElement?.closest?.('.member')?.dataset.user;
  ui.members.replaceChildren(...items);
  if (focused) ui.members.querySelector(`[data-user="${CSS.escape(focused)}"] button`)?.focus();
  ui.memberCount.textContent = String(members.length);
}

function callButton(name) {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'member-call';
  button.setAttribute('aria-label', `Call ${name}`);
  button.title = calls.directory.get(name) === 'busy' ? `${name} is in a call` : `Call ${name}`;
  button.disabled = calls.state !== 'idle';
  button.append(cameraIcon());
  button.addEventListener('click', () => calls.call(name));
  return button;
}

function cameraIcon() {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '16');
  svg.setAttribute('height', '16');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('fill', 'currentColor');
  path.setAttribute('d', 'M17 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-3.5l4 4v-11z');
  svg.append(path);
  return svg;
}

function initial(name) {
  return Array.from(name.trim())[0]?.toUpperCase() ?? '?';
}

function hue(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function onTyping(user) {
  if (!user || user === me) return;
  clearTimeout(typists.get(user));
  typists.set(user, setTimeout(() => forgetTypist(user), TYPING_SHOWN_MS));
  renderTyping();
}

function forgetTypist(user) {
  if (!typists.has(user)) return;
  clearTimeout(typists.get(user));
  typists.delete(user);
  renderTyping();
}

function renderTyping() {
  const names = [...typists.keys()];
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = `${names[0]}, ${names[1]} and ${names.length - 2} more are typing…`;
  ui.typing.textContent = text;
}

// -- composer -----------------------------------------------------------------------------

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.input.value.trim();
  if (!text) return;
  ui.input.value = '';
  autosize();
  post(text);
  ui.input.focus();
});

ui.input.addEventListener('keydown', (event) => {
  if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  ui.form.requestSubmit();
});

ui.input.addEventListener('input', () => {
  autosize();
  announceTyping();
});

/** Tell the room we are typing: at most once per interval, and once more at the end of an
 * interval if there was typing during it (the server drops anything more frequent). */
function announceTyping() {
  if (!ui.input.value.trim() || !isOpen()) return;
  const wait = lastTypingSent + typingIntervalMs - Date.now();
  if (wait > 0) {
    if (!typingTimer) {
      typingTimer = setTimeout(() => {
        typingTimer = 0;
        announceTyping();
      }, wait);
    }
    return;
  }
  lastTypingSent = Date.now();
  socket.send(JSON.stringify({ type: 'typing' }));
}

function autosize() {
  ui.input.style.height = 'auto';
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, INPUT_MAX_HEIGHT_PX)}px`;
}

// -- page life ----------------------------------------------------------------------------

window.addEventListener('pagehide', () => {
  unloading = true;
  clearTimeout(retryTimer);
  if (socket) socket.close(1000, 'page closed');
});

window.addEventListener('pageshow', (event) => {
  if (!event.persisted) return; // restored from the back/forward cache
  unloading = false;
  socket = null;
  setState('reconnecting');
  reconnectNow();
});

window.addEventListener('offline', () => setState('offline'));
window.addEventListener('online', () => {
  if (isOpen()) setState('connected');
  else {
    setState('reconnecting');
    reconnectNow();
  }
});

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && retryTimer) reconnectNow();
});

// -- calls --------------------------------------------------------------------------------

const calls = new CallClient();
mountCallPanel(calls);
calls.addEventListener('directory', renderMembers);
calls.addEventListener('state', renderMembers);
calls.start(me);

setState('connecting');
connect();
