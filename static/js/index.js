// The start page: picking an active room fills the form instead of reloading the page, and
// the list of active rooms refreshes itself (GET /api/rooms) while the page is visible.

const REFRESH_MS = 10_000;

const form = document.getElementById('join-form');
const roomInput = document.getElementById('room_name');
const userInput = document.getElementById('username');
const list = document.getElementById('room-list');
const empty = document.getElementById('rooms-empty');

function pick(name) {
  roomInput.value = name;
  roomInput.removeAttribute('aria-invalid');
  userInput.focus();
  const url = new URL(location.href);
  url.searchParams.set('room', name);
  history.replaceState(null, '', url);
}

list.addEventListener('click', (event) => {
  const link = event.target.closest('a.room-link');
  if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
    return;
  }
  event.preventDefault();
  pick(link.dataset.room);
});

function roomItem({ name, members }) {
  const item = document.createElement('li');
  const link = document.createElement('a');
  link.className = 'room-link';
  link.href = `/?room=${encodeURIComponent(name)}`;
  link.dataset.room = name;
  const label = document.createElement('span');
  label.className = 'room-name';
  label.textContent = name;
  const count = document.createElement('span');
  count.className = 'room-count';
  count.textContent = String(members);
  count.setAttribute('aria-label', `${members} ${members === 1 ? 'person' : 'people'}`);
  link.append(label, count);
  item.append(link);
  return item;
}

async function refresh() {
  if (document.visibilityState !== 'visible') return;
  try {
    const response = await fetch('/api/rooms', { headers: { Accept: 'application/json' } });
    if (!response.ok) return;
    const { rooms } = await response.json();
    if (!Array.isArray(rooms)) return;
    const focused = document.activeElement?.closest?.('#room-list') ? document.activeElement.dataset.room : null;
    list.replaceChildren(...rooms.map(roomItem));
    list.hidden = rooms.length === 0;
    empty.hidden = rooms.length !== 0;
    if (focused !== null) list.querySelector(`a[data-room="${CSS.escape(focused)}"]`)?.focus();
  } catch {
    // offline or server restarting: keep the list we have
  }
}

setInterval(refresh, REFRESH_MS);
document.addEventListener('visibilitychange', refresh);

// Clear a field's server-side error once it is edited.
for (const input of [roomInput, userInput]) {
  input.addEventListener('input', () => {
    if (input.getAttribute('aria-invalid') !== 'true') return;
    input.removeAttribute('aria-invalid');
    input.closest('.field')?.classList.remove('has-error');
  });
}

form.addEventListener('submit', () => {
  roomInput.value = roomInput.value.trim();
  userInput.value = userInput.value.trim();
});
