// One-on-one video calls: the signalling socket (/ws/call/), the peer connection and the
// call panel.  Used by the call page and by the room page (call a member with one click).
//
// WebRTC: getUserMedia with an audio-only fallback, addTrack/ontrack, trickle ICE with
// candidates queued until the remote description is set, "perfect negotiation" (the caller
// is impolite, the callee polite) so that renegotiation cannot glare, and an ICE restart
// when the connection fails.  The first offer and answer travel in the seed's `call` and
// `answer_call` frames; later ones in `sdp` frames.
'use strict';

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const FAILED_GRACE_MS = 15_000; // an ICE restart gets this long before the call is given up

// Errors about a call that has just ended, for frames that were on their way: not news.
const STALE_ERRORS = new Set(['not_in_call', 'no_such_call']);
// Errors that refuse a `call` frame: the attempt is over.
const CALL_REFUSED = new Set(['already_in_call', 'invalid_call', 'invalid_name']);

const ENDINGS = {
  declined: (peer, mine) => (mine ? 'You declined the call.' : `${peer} declined the call.`),
  cancelled: (peer, mine) => (mine ? 'Call cancelled.' : `Missed call from ${peer}.`),
  no_answer: (peer, mine, caller) =>
    caller ? `${peer} did not answer.` : `Missed call from ${peer}.`,
  hung_up: (peer, mine) => (mine ? 'You hung up.' : `${peer} hung up.`),
  disconnected: (peer) => `Connection lost: ${peer} went offline.`,
  busy: (peer) => `${peer} is busy in another call.`,
  unavailable: (peer) => `${peer} is not online.`,
  connection_lost: () => 'Connection lost: the call ended.',
  media: () => null, // the problem event already said what went wrong with the devices
  refused: () => null, // so did the error that refused the call
  superseded: () => null, // a call came in before ours was placed: the ring says it all
};

export class CallClient extends EventTarget {
  constructor() {
    super();
    this.name = '';
    this.state = 'offline'; // offline | idle | calling | ringing | incoming | in_call
    this.peer = null;
    this.isCaller = false;
    this.directory = new Map(); // name -> available | busy
    this.socket = null;
    this.inbound = Promise.resolve(); // the chain that handles inbound frames in order
    this.backoffMs = BACKOFF_START_MS;
    this.stopped = false;
    this.iceServers = [];
    this.pc = null;
    this.localStream = null;
    this.cameraTrack = null;
    this.screenTrack = null;
    this.remoteStream = null;
    this.remoteOffer = null;
    this.pendingCandidates = [];
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.offerSent = false;
    this.endedByMe = false;
    this.failure = null; // a local reason that overrides the server's for the ending
    this.connectedAt = 0;
    this.failedTimer = 0;
  }

  // -- signalling socket -------------------------------------------------------------------

  start(name) {
    this.name = name;
    this.stopped = false;
    this.connect();
  }

  // Fetched for every call: TURN credentials expire (ice.turn_ttl_seconds).
  async loadIceServers() {
    try {
      const response = await fetch(`/api/ice-servers?name=${encodeURIComponent(this.name)}`);
      if (response.ok) this.iceServers = (await response.json()).iceServers;
    } catch {
      // no ICE servers: host candidates still work on a LAN
    }
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(`${scheme}//${location.host}/ws/call/`);
    this.socket = socket;
    socket.addEventListener('open', () => this.send('login', { name: this.name }));
    socket.addEventListener('message', (event) => {
      if (socket !== this.socket) return;
      // One frame at a time, in order: a description must be applied before what follows it.
      this.inbound = this.inbound
        .then(() => this.onFrame(event.data))
        .catch((error) => console.error('call frame not handled', error));
    });
    socket.addEventListener('close', (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      // after the frames already received, like any other event of the call
      this.inbound = this.inbound.then(() => {
        if (this.state !== 'idle' && this.state !== 'offline') this.end('connection_lost');
        this.setState('offline');
      });
      if (event.code === 4009 || this.stopped) return; // replaced by a newer tab: stay off
      setTimeout(() => this.connect(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    });
  }

  stop() {
    this.stopped = true;
    this.socket?.close(1000);
  }

  send(type, data = {}) {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify({ type, data }));
    return true;
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  setState(state) {
    this.state = state;
    this.emit('state', { state, peer: this.peer });
  }

  async onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const data = frame.data ?? {};
    switch (frame.type) {
      case 'logged_in':
        this.backoffMs = BACKOFF_START_MS; // only a working connection resets the backoff
        this.directory = new Map(data.users.map((user) => [user.name, user.status]));
        this.emit('directory');
        this.setState('idle');
        break;
      case 'user_status':
        if (data.status === 'offline') this.directory.delete(data.name);
        else this.directory.set(data.name, data.status);
        this.emit('directory');
        break;
      case 'call_received':
        this.onIncoming(data.caller, data.rtcMessage);
        break;
      case 'ringing':
        if (this.state === 'calling') this.setState('ringing');
        break;
      case 'call_answered':
        if (this.state !== 'calling' && this.state !== 'ringing') break;
        this.setState('in_call');
        await this.onDescription(data.rtcMessage);
        break;
      case 'sdp':
        await this.onDescription(data.rtcMessage);
        break;
      case 'ICEcandidate':
        await this.onCandidate(data.rtcMessage);
        break;
      case 'busy':
      case 'unavailable':
        if (data.name === this.peer) this.end(frame.type);
        break;
      case 'call_ended':
        if (data.name === this.peer) this.end(data.reason);
        break;
      case 'error':
        this.onError(data.code, data.message);
        break;
      default:
        break;
    }
  }

  onError(code, message) {
    if (code === 'name_taken' || code === 'replaced') {
      this.stopped = true; // another connection holds the name: do not fight it
      if (code === 'name_taken') this.socket?.close(1000);
    }
    if (STALE_ERRORS.has(code) && (this.state === 'idle' || this.state === 'offline')) {
      return; // a candidate or hang-up that crossed the end of the call
    }
    if (this.state === 'calling' && CALL_REFUSED.has(code)) {
      this.failure = 'refused';
      this.end('refused');
    }
    this.emit('problem', { code, message });
  }

  // -- placing and answering ---------------------------------------------------------------

  async call(peer) {
    if (this.state !== 'idle' || peer === this.name) return;
    this.peer = peer;
    this.isCaller = true;
    this.endedByMe = false;
    this.offerSent = false;
    this.setState('calling');
    const [media] = await Promise.all([this.openMedia(), this.loadIceServers()]);
    if (this.state !== 'calling' || this.peer !== peer) {
      stopTracks(media); // cancelled, or a call came in, while the camera was starting
      return;
    }
    if (!media) {
      this.failure = 'media';
      this.end('media');
      return;
    }
    this.useMedia(media);
    this.createPeerConnection(false);
    for (const track of this.localStream.getTracks()) this.pc.addTrack(track, this.localStream);
    // onnegotiationneeded sends the offer in a `call` frame
  }

  onIncoming(caller, offer) {
    if (this.state === 'calling' && !this.offerSent) {
      // our own call was not placed yet (the camera was starting): the incoming one wins
      this.end('superseded');
    }
    if (this.state !== 'idle') {
      this.send('decline'); // the server thought us free; do not leave the caller ringing
      return;
    }
    this.peer = caller;
    this.isCaller = false;
    this.endedByMe = false;
    this.remoteOffer = offer;
    this.pendingCandidates = [];
    this.setState('incoming');
  }

  async accept() {
    if (this.state !== 'incoming') return;
    const peer = this.peer;
    this.setState('in_call');
    const [media] = await Promise.all([this.openMedia(), this.loadIceServers()]);
    if (this.state !== 'in_call' || this.peer !== peer) {
      stopTracks(media); // the caller gave up while the camera was starting
      return;
    }
    if (!media) {
      this.failure = 'media';
      this.send('decline');
      return;
    }
    this.useMedia(media);
    this.createPeerConnection(true);
    try {
      await this.pc.setRemoteDescription(this.remoteOffer);
      for (const track of this.localStream.getTracks()) this.pc.addTrack(track, this.localStream);
      await this.pc.setLocalDescription();
      this.send('answer_call', { caller: this.peer, rtcMessage: this.pc.localDescription });
      this.offerSent = true;
      await this.flushCandidates();
    } catch (error) {
      this.emit('problem', { code: 'webrtc', message: `Could not answer: ${error.message}` });
      this.hangup();
    }
  }

  decline() {
    if (this.state !== 'incoming') return;
    this.endedByMe = true;
    this.send('decline');
  }

  hangup() {
    if (this.state === 'idle' || this.state === 'offline') return;
    this.endedByMe = true;
    if (this.state === 'calling' && !this.offerSent) {
      this.end('cancelled'); // the server has not heard of this call yet
      return;
    }
    if (!this.send('hangup')) this.end('connection_lost');
  }

  // -- media -------------------------------------------------------------------------------

  // The camera and microphone, else the microphone alone; null (and a problem event
  // saying why) when neither can be used.
  async openMedia() {
    const devices = navigator.mediaDevices;
    if (!devices?.getUserMedia) {
      this.problem('media', 'This browser cannot use a camera here (a secure https page is needed).');
      return null;
    }
    try {
      return await devices.getUserMedia({ audio: true, video: true });
    } catch (error) {
      if (error.name === 'NotAllowedError' || error.name === 'SecurityError') {
        this.problem('media', 'Camera and microphone access was denied. Allow it in the browser’s site settings and try again.');
        return null;
      }
      const camera = error.name === 'NotReadableError' ? 'The camera is in use by another program' : 'No camera found';
      try {
        const stream = await devices.getUserMedia({ audio: true });
        this.problem('audio_only', `${camera}: the call is audio only.`);
        return stream;
      } catch (again) {
        this.problem('media', again.name === 'NotAllowedError'
          ? 'Microphone access was denied. Allow it in the browser’s site settings and try again.'
          : 'No microphone or camera could be used.');
        return null;
      }
    }
  }

  useMedia(stream) {
    this.localStream = stream;
    this.cameraTrack = stream.getVideoTracks()[0] ?? null;
    this.emit('local-stream', { stream });
  }

  problem(code, message) {
    this.emit('problem', { code, message });
  }

  setMuted(muted) {
    for (const track of this.localStream?.getAudioTracks() ?? []) track.enabled = !muted;
  }

  setCameraOff(off) {
    if (this.cameraTrack) this.cameraTrack.enabled = !off;
  }

  get muted() {
    return !(this.localStream?.getAudioTracks()[0]?.enabled ?? true);
  }

  get cameraOff() {
    return !(this.cameraTrack?.enabled ?? false);
  }

  async shareScreen() {
    if (!this.pc || this.screenTrack) return;
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
    } catch (error) {
      if (error.name !== 'NotAllowedError') {
        this.emit('problem', { code: 'share', message: `Cannot share the screen: ${error.message}` });
      }
      return;
    }
    const track = stream.getVideoTracks()[0];
    this.screenTrack = track;
    track.addEventListener('ended', () => this.stopSharing());
    const sender = this.videoSender();
    if (sender) await sender.replaceTrack(track);
    else this.pc.addTrack(track, stream); // audio-only call: renegotiates
    this.emit('sharing', { sharing: true, stream });
  }

  async stopSharing() {
    const track = this.screenTrack;
    if (!track) return;
    this.screenTrack = null;
    track.stop();
    const sender = this.pc?.getSenders().find((s) => s.track === track);
    if (sender) await sender.replaceTrack(this.cameraTrack);
    this.emit('sharing', { sharing: false, stream: this.localStream });
  }

  videoSender() {
    return this.pc?.getSenders().find((sender) => sender.track?.kind === 'video') ?? null;
  }

  // -- the peer connection -----------------------------------------------------------------

  createPeerConnection(polite) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    this.polite = polite;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.offerSent = false;
    this.remoteStream = new MediaStream();
    this.emit('remote-stream', { stream: this.remoteStream });
    pc.addEventListener('icecandidate', ({ candidate }) => {
      if (candidate && this.pc === pc) {
        this.send('ICEcandidate', { user: this.peer, rtcMessage: candidate.toJSON() });
      }
    });
    pc.addEventListener('track', ({ track }) => {
      this.remoteStream.addTrack(track);
      this.emit('remote-stream', { stream: this.remoteStream });
    });
    pc.addEventListener('negotiationneeded', async () => {
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        if (this.pc !== pc) return;
        if (this.offerSent) this.send('sdp', { rtcMessage: pc.localDescription });
        else this.send('call', { name: this.peer, rtcMessage: pc.localDescription });
        this.offerSent = true;
      } catch (error) {
        this.emit('problem', { code: 'webrtc', message: `Negotiation failed: ${error.message}` });
      } finally {
        this.makingOffer = false;
      }
    });
    pc.addEventListener('connectionstatechange', () => this.onConnectionState(pc));
  }

  onConnectionState(pc) {
    if (this.pc !== pc) return;
    const state = pc.connectionState;
    if (state === 'connected') {
      clearTimeout(this.failedTimer);
      this.failedTimer = 0;
      if (!this.connectedAt) this.connectedAt = Date.now();
    } else if (state === 'failed' && !this.failedTimer) {
      pc.restartIce(); // the impolite side's offer carries the restart; both may ask
      this.failedTimer = setTimeout(() => {
        if (this.pc !== pc || pc.connectionState === 'connected') return;
        this.failure = 'connection_lost';
        this.hangup();
      }, FAILED_GRACE_MS);
    }
    this.emit('media-state', { state });
  }

  async onDescription(description) {
    const pc = this.pc;
    if (!pc || !description) return;
    try {
      const collision =
        description.type === 'offer' && (this.makingOffer || pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      await pc.setRemoteDescription(description); // a polite side rolls back implicitly
      if (description.type === 'offer') {
        await pc.setLocalDescription();
        this.send('sdp', { rtcMessage: pc.localDescription });
      }
      await this.flushCandidates();
    } catch (error) {
      this.emit('problem', { code: 'webrtc', message: `Negotiation failed: ${error.message}` });
    }
  }

  async onCandidate(message) {
    if (!message) return;
    // The seed's clients send {label, id, candidate}; browsers {sdpMid, sdpMLineIndex, ...}.
    const candidate = {
      candidate: message.candidate,
      sdpMid: message.sdpMid ?? message.id ?? null,
      sdpMLineIndex: message.sdpMLineIndex ?? message.label ?? null,
      usernameFragment: message.usernameFragment ?? null,
    };
    if (!this.pc || !this.pc.remoteDescription) {
      this.pendingCandidates.push(candidate);
      return;
    }
    await this.addCandidate(candidate);
  }

  async flushCandidates() {
    const queued = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const candidate of queued) await this.addCandidate(candidate);
  }

  async addCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (error) {
      if (!this.ignoreOffer) console.warn('ICE candidate refused', error);
    }
  }

  // -- ending ------------------------------------------------------------------------------

  end(serverReason) {
    const reason = this.failure ?? serverReason;
    this.failure = null;
    const peer = this.peer ?? '';
    const message = (ENDINGS[reason] ?? (() => 'The call ended.'))(
      peer,
      this.endedByMe,
      this.isCaller,
    );
    clearTimeout(this.failedTimer);
    this.failedTimer = 0;
    if (this.screenTrack) this.screenTrack.stop();
    this.screenTrack = null;
    stopTracks(this.localStream);
    this.localStream = null;
    this.offerSent = false;
    this.cameraTrack = null;
    this.pc?.close();
    this.pc = null;
    this.remoteStream = null;
    this.remoteOffer = null;
    this.pendingCandidates = [];
    this.connectedAt = 0;
    this.peer = null;
    this.emit('ended', { reason, message, peer });
    this.setState(this.socket ? 'idle' : 'offline');
  }
}

function stopTracks(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

// -- the call panel ------------------------------------------------------------------------

const STATUS_TEXT = {
  offline: () => 'Calls: connecting…',
  idle: () => '',
  calling: (peer) => `Calling ${peer}…`,
  ringing: (peer) => `Ringing ${peer}…`,
  incoming: (peer) => `${peer} is calling you`,
  in_call: (peer) => `In call with ${peer}`,
};

export function mountCallPanel(client) {
  const $ = (id) => document.getElementById(id);
  const ui = {
    panel: $('call-panel'),
    status: $('call-status'),
    duration: $('call-duration'),
    durationValue: $('call-duration').querySelector('.value'),
    notice: $('call-notice'),
    incoming: $('incoming-call'),
    accept: $('accept-call'),
    decline: $('decline-call'),
    cancel: $('cancel-call'),
    controls: $('call-controls'),
    mute: $('mute-button'),
    camera: $('camera-button'),
    share: $('share-button'),
    hangup: $('hangup-button'),
    local: $('local-video'),
    remote: $('remote-video'),
  };
  const baseTitle = document.title;
  let clock = 0;

  // The label says what a click does ("Unmute"), so no aria-pressed on top of it.
  const setPressed = (button, pressed, onText, offText) => {
    button.dataset.on = String(pressed);
    button.querySelector('.label').textContent = pressed ? onText : offText;
  };

  const render = () => {
    const { state, peer } = client;
    ui.panel.dataset.state = state;
    ui.panel.hidden = state === 'idle' || state === 'offline';
    ui.status.textContent = (STATUS_TEXT[state] ?? (() => ''))(peer);
    ui.incoming.hidden = state !== 'incoming';
    ui.cancel.hidden = !(state === 'calling' || state === 'ringing');
    ui.controls.hidden = state !== 'in_call';
    document.title = state === 'incoming' ? `📞 ${peer} is calling · ${baseTitle}` : baseTitle;
    if (state === 'in_call' && !clock) {
      clock = setInterval(tick, 1000);
      tick();
    } else if (state !== 'in_call') {
      clearInterval(clock);
      clock = 0;
      ui.duration.hidden = true;
    }
    // Ring without taking the focus from someone typing; offer it when nothing has it.
    if (state === 'incoming' && document.activeElement === document.body) ui.accept.focus();
  };

  const tick = () => {
    if (!client.connectedAt) {
      ui.duration.hidden = false;
      ui.durationValue.textContent = 'Connecting…';
      return;
    }
    const seconds = Math.floor((Date.now() - client.connectedAt) / 1000);
    const mm = String(Math.floor(seconds / 60)).padStart(2, '0');
    const ss = String(seconds % 60).padStart(2, '0');
    ui.duration.hidden = false;
    ui.durationValue.textContent = `${mm}:${ss}`;
  };

  const showNotice = (text) => {
    ui.notice.textContent = text;
    ui.notice.hidden = !text;
  };

  client.addEventListener('state', () => {
    if (client.state !== 'idle' && client.state !== 'offline') showNotice('');
    render();
  });
  client.addEventListener('ended', (event) => {
    if (event.detail.message !== null) showNotice(event.detail.message);
    ui.local.srcObject = null;
    ui.remote.srcObject = null;
    setPressed(ui.mute, false, 'Unmute', 'Mute');
    setPressed(ui.camera, false, 'Camera on', 'Camera off');
    setPressed(ui.share, false, 'Stop sharing', 'Share screen');
  });
  client.addEventListener('problem', (event) => showNotice(event.detail.message));
  client.addEventListener('local-stream', (event) => {
    ui.local.srcObject = event.detail.stream;
  });
  client.addEventListener('remote-stream', (event) => {
    ui.remote.srcObject = event.detail.stream;
  });
  client.addEventListener('sharing', (event) => {
    ui.local.srcObject = event.detail.stream;
    setPressed(ui.share, event.detail.sharing, 'Stop sharing', 'Share screen');
  });
  client.addEventListener('media-state', () => tick());

  ui.accept.addEventListener('click', () => client.accept());
  ui.decline.addEventListener('click', () => client.decline());
  ui.cancel.addEventListener('click', () => client.hangup());
  ui.hangup.addEventListener('click', () => client.hangup());
  ui.mute.addEventListener('click', () => {
    client.setMuted(!client.muted);
    setPressed(ui.mute, client.muted, 'Unmute', 'Mute');
  });
  ui.camera.addEventListener('click', () => {
    client.setCameraOff(!client.cameraOff);
    setPressed(ui.camera, client.cameraOff, 'Camera on', 'Camera off');
  });
  ui.share.addEventListener('click', () => {
    if (client.screenTrack) client.stopSharing();
    else client.shareScreen();
  });
  ui.share.hidden = !navigator.mediaDevices?.getDisplayMedia;
  render();
  return { showNotice };
}
