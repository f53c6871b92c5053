// The call page: log in with a name, see who is online, call them; ?name=&call= (from a
// room's member list) logs in and calls at once.
import { CallClient, mountCallPanel } from './calls.js';

const root = document.querySelector('main.calls');
const $ = (id) => document.getElementById(id);
const ui = {
  loginCard: $('login-card'),
  loginForm: $('login-form'),
  loginName: $('login-name'),
  loginError: $('login-error'),
  onlineCard: $('online-card'),
  myName: $('my-name'),
  state: $('calls-state'),
  users: $('online-users'),
  empty: $('online-empty'),
};
const client = new CallClient();
let pendingCall = root.dataset.call || '';

mountCallPanel(client);
client.addEventListener('directory', renderUsers);
client.addEventListener('state', onState);
client.addEventListener('problem', onProblem);

function login(name) {
  ui.myName.textContent = name;
  ui.loginCard.hidden = true;
  ui.onlineCard.hidden = false;
  client.start(name);
}

function onState() {
  const online = client.state !== 'offline';
  ui.state.textContent = online ? 'Online: others can call you.' : 'Connecting…';
  ui.state.dataset.state = online ? 'online' : 'offline';
  renderUsers();
  if (client.state === 'idle' && pendingCall) {
    const callee = pendingCall;
    pendingCall = '';
    client.call(callee);
  }
}

function onProblem(event) {
  const { code, message } = event.detail;
  if (code === 'name_taken' || code === 'invalid_name') {
    client.stop();
    ui.onlineCard.hidden = true;
    ui.loginCard.hidden = false;
    ui.loginError.textContent = message;
    ui.loginError.hidden = false;
    ui.loginName.setAttribute('aria-invalid', 'true');
    ui.loginName.focus();
  } else if (code === 'replaced') {
    ui.state.textContent = 'You are logged in for calls in another tab; this one is off.';
    ui.state.dataset.state = 'offline';
  }
}

function renderUsers() {
  const names = [...client.directory.keys()].sort((a, b) =>
    a.localeCompare(b, undefined, { sensitivity: 'base' }),
  );
  const items = names.map((name) => {
    const status = client.directory.get(name);
    const item = document.createElement('li');
    item.className = 'online-user';
    item.dataset.name = name;
    item.dataset.status = status;
    const label = document.createElement('span');
    label.className = 'online-name';
    label.textContent = name;
    const badge = document.createElement('span');
    badge.className = 'online-status';
    badge.textContent = status === 'busy' ? 'in a call' : 'available';
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'button button-ok call-button';
    button.textContent = 'Call';
    button.setAttribute('aria-label', `Call ${name}`);
    button.disabled = client.state !== 'idle'; // a busy person may be tried: they answer busy
    button.addEventListener('click', () => client.call(name));
    item.append(label, badge, button);
    return item;
  });
  const focused = document.activeElement?.closest?.('.online-user')?.dataset.name;
  ui.users.replaceChildren(...items);
  if (focused) ui.users.querySelector(`[data-name="${CSS.escape(focused)}"] button`)?.focus();
  ui.empty.hidden = names.length > 0;
}

ui.loginForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const name = ui.loginName.value.trim();
  if (!name) return;
  ui.loginError.hidden = true;
  ui.loginName.removeAttribute('aria-invalid');
  login(name);
});

if (root.dataset.name) login(root.dataset.name);
