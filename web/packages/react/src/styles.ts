/**
 * The NotificationBell's stylesheet, as text: no CSS loader needed. Theme it by setting the
 * custom properties on `.tn-bell` or any ancestor; every colour and size below reads one.
 */
export const notificationBellCss = `
.tn-bell {
  --tn-font: inherit;
  --tn-fg: #1f2328;
  --tn-muted: #59636e;
  --tn-bg: #ffffff;
  --tn-border: #d1d9e0;
  --tn-hover: #f6f8fa;
  --tn-unread-bg: #eef4ff;
  --tn-accent: #0969da;
  --tn-badge-bg: #cf222e;
  --tn-badge-fg: #ffffff;
  --tn-high: #bc4c00;
  --tn-urgent: #cf222e;
  --tn-focus: #0969da;
  --tn-status-ok: #1a7f37;
  --tn-status-warn: #9a6700;
  --tn-status-bad: #cf222e;
  --tn-radius: 8px;
  --tn-panel-width: 380px;
  --tn-panel-max-height: 480px;
  --tn-shadow: 0 8px 24px rgba(31, 35, 40, 0.16);
  position: relative;
  display: inline-block;
  font-family: var(--tn-font);
  color: var(--tn-fg);
}
.tn-bell *, .tn-bell *::before, .tn-bell *::after { box-sizing: border-box; }
.tn-visually-hidden {
  position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; border: 0;
  overflow: hidden; clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap;
}
.tn-bell :focus-visible { outline: 2px solid var(--tn-focus); outline-offset: 2px; }
.tn-bell__button {
  position: relative; display: inline-flex; align-items: center; justify-content: center;
  width: 40px; height: 40px; padding: 0; border: 1px solid transparent;
  border-radius: 50%; background: transparent; color: inherit; cursor: pointer;
}
.tn-bell__button:hover { background: var(--tn-hover); }
.tn-bell__icon { width: 22px; height: 22px; }
.tn-bell__badge {
  position: absolute; top: 0; right: 0; min-width: 18px; height: 18px; padding: 0 5px;
  border-radius: 9px; background: var(--tn-badge-bg); color: var(--tn-badge-fg);
  font-size: 11px; font-weight: 700; line-height: 18px; text-align: center;
}
.tn-bell__button[data-status="reconnecting"]::after,
.tn-bell__button[data-status="offline"]::after,
.tn-bell__button[data-status="auth_failed"]::after {
  content: ""; position: absolute; bottom: 4px; right: 4px; width: 8px; height: 8px;
  border-radius: 50%; background: var(--tn-status-warn);
}
.tn-bell__button[data-status="auth_failed"]::after { background: var(--tn-status-bad); }
.tn-bell__panel {
  position: absolute; z-index: 1000; top: calc(100% + 6px); right: 0;
  width: min(var(--tn-panel-width), calc(100vw - 16px));
  display: flex; flex-direction: column; max-height: var(--tn-panel-max-height);
  background: var(--tn-bg); color: var(--tn-fg); border: 1px solid var(--tn-border);
  border-radius: var(--tn-radius); box-shadow: var(--tn-shadow); overflow: hidden;
}
.tn-bell__panel[hidden] { display: none; }
.tn-bell__header {
  display: flex; flex-wrap: wrap; align-items: center; gap: 8px;
  padding: 10px 12px; border-bottom: 1px solid var(--tn-border);
}
.tn-bell__heading { margin: 0; font-size: 15px; font-weight: 600; flex: 1 1 auto; }
.tn-bell__status { display: inline-flex; align-items: center; gap: 6px; font-size: 12px; color: var(--tn-muted); }
.tn-bell__status::before {
  content: ""; width: 8px; height: 8px; border-radius: 50%; background: var(--tn-muted);
}
.tn-bell__status[data-status="connected"]::before { background: var(--tn-status-ok); }
.tn-bell__status[data-status="connecting"]::before,
.tn-bell__status[data-status="reconnecting"]::before,
.tn-bell__status[data-status="offline"]::before { background: var(--tn-status-warn); }
.tn-bell__status[data-status="auth_failed"]::before { background: var(--tn-status-bad); }
.tn-bell__toolbar { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; justify-content: space-between; width: 100%; }
.tn-bell__tabs { display: inline-flex; gap: 4px; }
.tn-bell__tab, .tn-bell__action {
  border: 0; background: transparent; color: inherit; font: inherit; font-size: 13px;
  padding: 4px 8px; border-radius: 6px; cursor: pointer;
}
.tn-bell__tab[aria-selected="true"] { background: var(--tn-hover); font-weight: 600; box-shadow: inset 0 -2px 0 var(--tn-accent); }
.tn-bell__action { color: var(--tn-accent); }
.tn-bell__action[aria-disabled="true"] { color: var(--tn-muted); cursor: default; }
.tn-bell__scroll { overflow-y: auto; flex: 1 1 auto; overscroll-behavior: contain; }
.tn-bell__menu { margin: 0; padding: 0; }
.tn-bell__item {
  display: flex; gap: 10px; padding: 10px 12px; border-bottom: 1px solid var(--tn-border);
  border-left: 4px solid transparent; cursor: pointer; text-align: left;
}
.tn-bell__item:hover, .tn-bell__item:focus-visible { background: var(--tn-hover); }
.tn-bell__item[data-read="false"] { background: var(--tn-unread-bg); }
.tn-bell__item[data-priority="high"] { border-left-color: var(--tn-high); }
.tn-bell__item[data-priority="urgent"] { border-left-color: var(--tn-urgent); }
.tn-bell__item[data-priority="urgent"] .tn-bell__title { color: var(--tn-urgent); }
.tn-bell__dot { flex: 0 0 8px; height: 8px; margin-top: 6px; border-radius: 50%; }
.tn-bell__item[data-read="false"] .tn-bell__dot { background: var(--tn-accent); }
.tn-bell__body { display: flex; flex-direction: column; gap: 2px; min-width: 0; flex: 1 1 auto; }
.tn-bell__title { font-size: 14px; font-weight: 600; overflow-wrap: anywhere; }
.tn-bell__item[data-read="true"] .tn-bell__title { font-weight: 400; }
.tn-bell__message { font-size: 13px; color: var(--tn-muted); overflow-wrap: anywhere; }
.tn-bell__meta { display: flex; gap: 8px; align-items: center; font-size: 12px; color: var(--tn-muted); }
.tn-bell__priority {
  font-size: 11px; font-weight: 700; text-transform: uppercase; letter-spacing: 0.03em;
  padding: 0 6px; border-radius: 4px; color: var(--tn-badge-fg);
}
.tn-bell__priority[data-priority="high"] { background: var(--tn-high); }
.tn-bell__priority[data-priority="urgent"] { background: var(--tn-urgent); }
.tn-bell__note { margin: 0; padding: 16px 12px; font-size: 13px; color: var(--tn-muted); text-align: center; }
.tn-bell__error { margin: 0; padding: 8px 12px; font-size: 13px; color: var(--tn-status-bad); border-bottom: 1px solid var(--tn-border); }
.tn-bell__sentinel { height: 1px; }
.tn-bell__footer {
  display: flex; flex-wrap: wrap; gap: 8px; justify-content: center;
  padding: 6px 12px; border-top: 1px solid var(--tn-border);
}
.tn-bell__footer:empty { display: none; }
.tn-bell__item { position: relative; }
.tn-bell__archive, .tn-bell__prefs-button {
  display: inline-flex; align-items: center; justify-content: center; flex: 0 0 auto;
  width: 28px; height: 28px; padding: 0; border: 0; border-radius: 6px;
  background: transparent; color: var(--tn-muted); cursor: pointer;
}
.tn-bell__archive { align-self: center; opacity: 0.55; }
.tn-bell__item:hover .tn-bell__archive, .tn-bell__item:focus-visible .tn-bell__archive, .tn-bell__archive:focus-visible { opacity: 1; }
.tn-bell__archive:hover, .tn-bell__prefs-button:hover, .tn-bell__prefs-button[aria-expanded="true"] { background: var(--tn-border); color: var(--tn-fg); }
.tn-bell__small-icon { width: 16px; height: 16px; }
.tn-bell__quiet-tag { font-size: 11px; padding: 0 6px; border-radius: 4px; border: 1px solid var(--tn-border); }
.tn-bell__prefs { display: flex; flex-direction: column; gap: 12px; padding: 12px; font-size: 13px; }
.tn-bell__fieldset { margin: 0; padding: 0; border: 0; display: flex; flex-direction: column; gap: 6px; min-width: 0; }
.tn-bell__fieldset legend { padding: 0; margin-bottom: 6px; font-weight: 600; font-size: 13px; }
.tn-bell__check { display: flex; align-items: center; gap: 8px; }
.tn-bell__check input { margin: 0; width: 16px; height: 16px; accent-color: var(--tn-accent); }
.tn-bell__check[data-locked="true"] { color: var(--tn-muted); }
.tn-bell__lock {
  display: inline-flex; align-items: center; gap: 4px; margin-left: auto; padding: 0 6px;
  border-radius: 4px; background: var(--tn-hover); font-size: 11px; font-weight: 600;
}
.tn-bell__lock-icon { width: 12px; height: 12px; }
.tn-bell__types summary { cursor: pointer; font-weight: 600; }
.tn-bell__types .tn-bell__fieldset { margin: 8px 0 0 12px; }
.tn-bell__hint { margin: 0; color: var(--tn-muted); font-size: 12px; }
.tn-bell__quiet { display: flex; flex-wrap: wrap; gap: 8px 12px; }
.tn-bell__quiet label { display: flex; flex-direction: column; gap: 2px; font-size: 12px; color: var(--tn-muted); }
.tn-bell__quiet input, .tn-bell__quiet select {
  font: inherit; font-size: 13px; color: var(--tn-fg); background: var(--tn-bg);
  border: 1px solid var(--tn-border); border-radius: 6px; padding: 3px 6px;
}
.tn-bell__quiet .tn-bell__zone { flex: 1 1 100%; }
.tn-bell__invalid { margin: 0; flex: 1 1 100%; color: var(--tn-status-bad); font-size: 12px; }
.tn-bell__savebar {
  position: sticky; bottom: 0; display: flex; align-items: center; gap: 10px;
  margin: 0 -12px -12px; padding: 8px 12px; background: var(--tn-bg); border-top: 1px solid var(--tn-border);
}
.tn-bell__save {
  font: inherit; font-size: 13px; font-weight: 600; padding: 5px 14px; border: 0; border-radius: 6px;
  background: var(--tn-accent); color: var(--tn-bg); cursor: pointer;
}
.tn-bell__save[aria-disabled="true"] { opacity: 0.6; cursor: default; }
.tn-bell__saved { font-size: 12px; color: var(--tn-status-ok); }
@media (prefers-reduced-motion: no-preference) {
  .tn-bell__item { transition: background-color 120ms ease-out; }
}
@media (forced-colors: active) {
  .tn-bell__item[data-priority="high"], .tn-bell__item[data-priority="urgent"] { border-left-color: CanvasText; }
  .tn-bell__badge { border: 1px solid CanvasText; }
}
`;
