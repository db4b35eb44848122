// The VM console: noVNC over the dashboard's websocket proxy.
import RFB from './vendor/novnc/core/rfb.js';

const screen = document.getElementById('screen');
const status = document.getElementById('console-status');
const scheme = window.location.protocol === 'https:' ? 'wss://' : 'ws://';
const url = scheme + window.location.host + screen.dataset.ws;

function show(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

const rfb = new RFB(screen, url, { wsProtocols: [] });
rfb.scaleViewport = true;
rfb.background = '#111';
rfb.addEventListener('connect', () => show('connected', 'connected'));
rfb.addEventListener('disconnect', (e) =>
  show('disconnected', e.detail.clean ? 'disconnected' : 'connection lost'));
rfb.addEventListener('desktopname', (e) => { document.title = e.detail.name + ' · skiff'; });
document.getElementById('send-cad').addEventListener('click', () => rfb.sendCtrlAltDel());
