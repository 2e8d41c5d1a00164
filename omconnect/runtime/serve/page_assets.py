"""The status page's script and stylesheet, served as static files from ``serve`` itself
(the page's Content-Security-Policy allows scripts and styles from its own origin only).

The script keeps the API token in ``sessionStorage`` (gone when the tab closes), sends it as
``Authorization: Bearer`` from ``fetch``, polls ``GET /pipelines?expand=status`` and renders
every value with ``textContent``: nothing from the API is ever parsed as HTML. Rows/s is the
change of the record counters between two polls.
"""

from __future__ import annotations

SCRIPT = r"""'use strict';
(() => {
  const TOKEN_KEY = 'omconnect.token';
  const REFRESH_MS = 2000;
  const ACTIONS = {
    pause: ['PUT', 'pause'],
    resume: ['PUT', 'resume'],
    restart: ['POST', 'restart'],
    run: ['POST', 'run'],
  };
  let previous = null;
  let timer = null;

  const byId = (id) => document.getElementById(id);
  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  function authorized(headers) {
    const all = Object.assign({}, headers || {});
    if (token()) all.Authorization = 'Bearer ' + token();
    return all;
  }

  function element(tag, text, className) {
    const made = document.createElement(tag);
    if (text !== undefined && text !== null) made.textContent = String(text);
    if (className) made.className = className;
    return made;
  }

  function notice(text, bad) {
    const where = byId('notice');
    where.textContent = text || '';
    where.className = bad ? 'bad' : 'muted';
  }

  function showSession() {
    const signedIn = Boolean(token());
    byId('login').hidden = signedIn;
    byId('session').hidden = !signedIn;
  }

  function seconds(value) {
    if (value === null || value === undefined) return null;
    if (value < 10) return value.toFixed(1) + ' s';
    if (value < 3600) return Math.round(value) + ' s';
    return (value / 3600).toFixed(1) + ' h';
  }

  function when(iso) {
    if (!iso) return '';
    const moment = new Date(iso);
    return isNaN(moment) ? iso : moment.toLocaleString();
  }

  function rates(pipelines, now) {
    const totals = {};
    const result = {};
    for (const [name, entry] of Object.entries(pipelines)) {
      const counters = entry.status.counters;
      totals[name] = [counters.records_read, counters.records_written];
      const before = previous && previous.totals[name];
      if (before) {
        const elapsed = (now - previous.at) / 1000;
        const moved = Math.max(totals[name][0] - before[0], totals[name][1] - before[1]);
        result[name] = elapsed > 0 && moved >= 0 ? moved / elapsed : null;
      }
    }
    previous = { at: now, totals: totals };
    return result;
  }

  function lagText(freshness) {
    const parts = [];
    const ack = seconds(freshness.event_to_ack_seconds);
    const flush = seconds(freshness.event_to_flush_seconds);
    if (ack !== null) parts.push('ack ' + ack);
    if (flush !== null) parts.push('flush ' + flush);
    if (freshness.consumer_lag !== null && freshness.consumer_lag !== undefined) {
      parts.push(freshness.consumer_lag + ' msgs');
    }
    return parts.length ? parts.join(' · ') : '-';
  }

  function button(name, action, label, enabled) {
    const made = element('button', label);
    made.type = 'button';
    made.dataset.action = action;
    made.disabled = !enabled || !token();
    if (!token()) made.title = 'sign in with the API token to act';
    made.addEventListener('click', () => act(name, action));
    return made;
  }

  function row(name, status, rate) {
    const tr = element('tr');
    tr.dataset.pipeline = name;
    const cell = (className, text) => {
      const td = element('td', text, className);
      tr.appendChild(td);
      return td;
    };
    const title = cell('name', null);
    title.appendChild(element('strong', name));
    if (status.description) title.appendChild(element('div', status.description, 'muted'));

    cell('state state-' + status.state, status.state);
    const freshness = status.freshness || {};
    const fresh = cell('freshness fresh-' + (freshness.state || 'none'), freshness.state || '-');
    const ages = [];
    if (freshness.seconds_since_record !== null && freshness.seconds_since_record !== undefined) {
      ages.push('record ' + seconds(freshness.seconds_since_record) + ' ago');
    }
    if (freshness.state && freshness.seconds_since_heartbeat !== null) {
      ages.push('heartbeat ' + seconds(freshness.seconds_since_heartbeat) + ' ago');
    }
    if (ages.length) fresh.appendChild(element('div', ages.join(' · '), 'muted'));

    const cron = status.schedule && typeof status.schedule === 'object'
      ? status.schedule.cron : status.schedule;
    const schedule = cell('schedule', cron || 'continuous');
    if (status.next_run) {
      schedule.appendChild(element('div', 'next ' + when(status.next_run), 'muted'));
    }

    cell('n rate', rate === null || rate === undefined ? '-' : rate.toFixed(1));
    cell('n read', status.counters.records_read.toLocaleString());
    cell('n written', status.counters.records_written.toLocaleString());
    cell('lag', lagText(freshness));
    const last = status.last_run;
    cell('error', status.error || (last && last.error) || '');

    const actions = cell('actions', null);
    const paused = status.state === 'PAUSED' || status.state === 'STOPPED';
    actions.appendChild(button(name, 'pause', 'Pause', !paused));
    actions.appendChild(button(name, 'resume', 'Resume', paused));
    actions.appendChild(button(name, 'restart', 'Restart', !paused));
    if (status.mode === 'scheduled') {
      actions.appendChild(button(name, 'run', 'Run now', !paused && status.state !== 'RUNNING'));
    }
    return tr;
  }

  function render(pipelines) {
    const rate = rates(pipelines, Date.now());
    const body = byId('pipelines');
    const rows = Object.entries(pipelines).map(
      ([name, entry]) => row(name, entry.status, rate[name]));
    if (!rows.length) {
      const empty = element('td', 'no pipelines', 'muted');
      empty.colSpan = 10;
      const tr = element('tr');
      tr.appendChild(empty);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    byId('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  }

  async function load() {
    clearTimeout(timer);
    try {
      const answer = await fetch(
        '/pipelines?expand=status', { headers: authorized(), cache: 'no-store' });
      if (answer.status === 401) {
        if (token()) sessionStorage.removeItem(TOKEN_KEY);
        showSession();
        notice('sign in with the API token to see the pipelines', true);
        return;
      }
      if (!answer.ok) throw new Error('HTTP ' + answer.status);
      render(await answer.json());
    } catch (error) {
      notice('cannot read the status: ' + error.message, true);
    }
    timer = setTimeout(load, REFRESH_MS);
  }

  async function act(name, action) {
    const [method, path] = ACTIONS[action];
    const url = '/pipelines/' + encodeURIComponent(name) + '/' + path;
    try {
      const answer = await fetch(url, { method: method, headers: authorized(), cache: 'no-store' });
      if (answer.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        showSession();
        notice('the token was refused; sign in again', true);
        return;
      }
      let message = '';
      try {
        message = (await answer.json()).message || '';
      } catch (ignored) {
        message = '';
      }
      if (answer.ok) notice(action + ' ' + name + ': accepted');
      else notice(action + ' ' + name + ': ' + (message || 'HTTP ' + answer.status), true);
    } catch (error) {
      notice(action + ' ' + name + ': ' + error.message, true);
    }
    load();
  }

  function start() {
    byId('login').addEventListener('submit', (event) => {
      event.preventDefault();
      const field = byId('token');
      sessionStorage.setItem(TOKEN_KEY, field.value.trim());
      field.value = '';
      showSession();
      notice('');
      load();
    });
    byId('logout').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      showSession();
      load();
    });
    showSession();
    const initial = byId('initial-status');
    if (initial && initial.textContent.trim()) render(JSON.parse(initial.textContent));
    load();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }
header { display: flex; gap: 2rem; align-items: baseline; flex-wrap: wrap; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #d0d7de;
  vertical-align: top; }
th { background: #f6f8fa; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.state { font-weight: 600; }
.state-RUNNING, .fresh-active { color: #1a7f37; }
.state-SCHEDULED { color: #0969da; }
.state-PAUSED, .state-STOPPED, .fresh-idle { color: #9a6700; }
.state-FAILED, .fresh-stalled, .fresh-lagging, .bad { color: #cf222e; }
.state-UNASSIGNED, .muted { color: #57606a; }
td.error { color: #cf222e; font-family: monospace; white-space: pre-wrap; max-width: 30rem; }
td.actions button { margin: 0 .2rem .2rem 0; }
"""
