// The avdetect upload page: pick a file, watch the upload and the job, read the report.
// Talks only to the service that served it (same origin); no external resources.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem('avdetect-token') || '', job: null, timer: null, health: null };

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function authHeaders() {
  return state.token ? { Authorization: 'Bearer ' + state.token } : {};
}

async function api(path, asText = false) {
  const r = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
  if (!r.ok) {
    let message = r.status + ' ' + r.statusText;
    try { message = (await r.json()).error || message; } catch (e) { /* the body was not JSON: keep the status line */ }
    throw new ApiError(r.status, message);
  }
  return asText ? r.text() : r.json();
}

function setState(name, text) {
  document.body.dataset.state = name;
  if (text !== undefined) $('state').textContent = text;
}

function showError(message) {
  const el = $('error');
  el.textContent = message;
  el.hidden = !message;
}

function mib(n) { return (n / 1048576).toFixed(n < 10485760 ? 1 : 0) + ' MiB'; }

async function loadHealth() {
  const h = await (await fetch('/healthz', { cache: 'no-store' })).json();
  state.health = h;
  $('service').textContent = `v${h.version} · ${h.model} on ${h.device} · ${h.queued} queued`;
  const dur = h.max_duration_s ? `, at most ${Math.round(h.max_duration_s)} s long` : '';
  $('limits').textContent = `Files up to ${mib(h.max_upload_bytes)}${dur}. They are checked on this service only.`;
  $('token-row').hidden = !h.auth;
  $('token').value = state.token;
}

function upload(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/v1/detections');
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      const pct = Math.round((100 * e.loaded) / e.total);
      $('upload-progress').value = pct;
      $('upload-pct').textContent = `${pct}% of ${mib(e.total)}`;
    };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = { error: xhr.status + ' ' + xhr.statusText }; }
      if (xhr.status === 202) resolve(body); else reject(new ApiError(xhr.status, body.error || xhr.statusText));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network error: the service could not be reached'));
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.send(form);
  });
}

async function submit(ev) {
  ev.preventDefault();
  showError('');
  state.token = $('token').value.trim();
  sessionStorage.setItem('avdetect-token', state.token);
  const file = $('file').files[0];
  if (!file) { showError('Pick a video or audio file first.'); return; }
  if (state.health && file.size > state.health.max_upload_bytes) {
    showError(`${file.name}: ${mib(file.size)} is over this service's limit of ${mib(state.health.max_upload_bytes)}.`);
    return;
  }
  $('result').hidden = true;
  $('progress-box').hidden = false;
  $('upload-progress').value = 0;
  $('upload-pct').textContent = '';
  $('job-progress').removeAttribute('value');
  $('submit').disabled = true;
  setState('uploading', 'waiting for the upload');
  try {
    const job = await upload(file);
    $('upload-progress').value = 100;
    location.hash = 'job=' + job.id;
    watch(job.id);
  } catch (err) {
    setState('error', '');
    showError(err.message);
    $('submit').disabled = false;
  }
}

function describe(job) {
  if (job.state === 'queued') return `queued (${job.queue_position || '?'} in line, waiting ${job.wait_s.toFixed(0)} s)`;
  if (job.state === 'running') return `running for ${job.run_s.toFixed(1)} s` + (job.attempts > 1 ? ` (attempt ${job.attempts})` : '');
  if (job.state === 'done') return `done in ${job.run_s.toFixed(1)} s`;
  return 'failed';
}

function watch(id) {
  clearTimeout(state.timer);
  state.job = id;
  $('progress-box').hidden = false;
  const tick = async () => {
    if (state.job !== id) return;
    let job;
    try {
      job = await api('/v1/detections/' + encodeURIComponent(id));
    } catch (err) {
      setState('error', '');
      showError(err.message);
      $('submit').disabled = false;
      return;
    }
    setState(job.state, describe(job));
    if (job.state === 'done') {
      $('job-progress').value = 1;
      $('submit').disabled = false;
      await showResult(job);
      loadJobs();
    } else if (job.state === 'failed') {
      $('job-progress').value = 0;
      showError(job.error);
      $('submit').disabled = false;
      loadJobs();
    } else {
      state.timer = setTimeout(tick, 700);
    }
  };
  tick();
}

async function showResult(job) {
  const r = job.report;
  const s = $('summary');
  s.className = r.verdict;
  s.replaceChildren();
  const parts = [['big', r.verdict.toUpperCase()], ['', `p(fake) ${r.fake_probability.toFixed(3)}`],
    ['', `threshold ${r.threshold.toFixed(2)}`], ['', `${r.segments.length} flagged segment(s)`], ['', job.file]];
  for (const [cls, text] of parts) {
    const span = document.createElement('span');
    if (cls) span.className = cls;
    span.textContent = text;
    s.appendChild(span);
  }
  const frame = $('report');
  frame.dataset.loaded = '';
  frame.onload = () => { frame.dataset.loaded = job.id; };
  frame.srcdoc = await api(`/v1/detections/${job.id}/report.html`, true);
  $('result').hidden = false;
}

async function download(fmt) {
  if (!state.job) return;
  try {
    const text = await api(`/v1/detections/${state.job}/report.${fmt}`, true);
    const types = { html: 'text/html', json: 'application/json', vtt: 'text/vtt', csv: 'text/csv' };
    const url = URL.createObjectURL(new Blob([text], { type: types[fmt] }));
    const a = document.createElement('a');
    a.href = url;
    if (fmt === 'html') a.target = '_blank'; else a.download = `report.${fmt}`;
    a.rel = 'noopener';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    showError(err.message);
  }
}

async function loadJobs() {
  let data;
  try {
    data = await api('/v1/detections?limit=10');
  } catch (err) {
    if (err.status !== 401) showError(err.message);
    return;
  }
  const body = $('jobs').tBodies[0];
  body.replaceChildren();
  for (const job of data.jobs) {
    const tr = document.createElement('tr');
    for (const text of [job.file, job.state, job.submitted_at.replace('T', ' ').slice(0, 19),
      job.run_s === null ? '' : job.run_s.toFixed(1)]) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.appendChild(td);
    }
    tr.addEventListener('click', () => { location.hash = 'job=' + job.id; showError(''); watch(job.id); });
    body.appendChild(tr);
  }
}

function jobFromHash() {
  const m = /job=([0-9a-f]{32})/.exec(location.hash);
  return m ? m[1] : null;
}

document.addEventListener('DOMContentLoaded', async () => {
  $('upload-form').addEventListener('submit', submit);
  for (const b of document.querySelectorAll('#downloads button')) b.addEventListener('click', () => download(b.dataset.format));
  $('token').addEventListener('change', () => {
    state.token = $('token').value.trim();
    sessionStorage.setItem('avdetect-token', state.token);
    loadJobs();
  });
  try {
    await loadHealth();
  } catch (err) {
    showError('the service did not answer /healthz: ' + err.message);
  }
  loadJobs();
  const id = jobFromHash();
  if (id) watch(id);
});
