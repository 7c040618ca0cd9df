import { useMemo, useState, type ReactNode, type SyntheticEvent } from "react";
import type { Preferences, PreferencesInfo } from "@tour-notify/client";
import type { NotificationBellStrings } from "./strings";

/** The catalog's categories, for when the server has not listed them yet. */
export const CATEGORIES: readonly string[] = ["booking", "payment", "tour", "agent", "chat", "system", "ai_agent"];

/** The browser's IANA time zone ("UTC" when it cannot say). */
export function browserTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch {
    return "UTC";
  }
}

function timeZones(current: string): readonly string[] {
  let zones: string[] = [];
  try {
    zones = Intl.supportedValuesOf("timeZone");
  } catch {
    // An older browser: the current zone is still offered.
  }
  return zones.includes(current) ? zones : [current, ...zones];
}

interface Draft {
  readonly categories: ReadonlySet<string>;
  readonly types: ReadonlySet<string>;
  readonly quiet: boolean;
  readonly start: string;
  readonly end: string;
  readonly zone: string;
}

function toDraft(p: Preferences | undefined): Draft {
  const q = p?.quiet_hours;
  return {
    categories: new Set(p?.muted_categories),
    types: new Set(p?.muted_types),
    quiet: q != null,
    start: q?.start ?? "22:00",
    end: q?.end ?? "07:00",
    zone: q?.time_zone ?? browserTimeZone(),
  };
}

function fromDraft(d: Draft): Preferences {
  return {
    muted_categories: [...d.categories].sort(),
    muted_types: [...d.types].sort(),
    quiet_hours: d.quiet ? { start: d.start, end: d.end, time_zone: d.zone } : null,
  };
}

function toggled(set: ReadonlySet<string>, value: string, on: boolean): ReadonlySet<string> {
  const next = new Set(set);
  if (on) next.add(value);
  else next.delete(value);
  return next;
}

export interface PreferencesPanelProps {
  id: string;
  /** null while loading. */
  info: PreferencesInfo | null;
  strings: NotificationBellStrings;
  onSave: (preferences: Preferences) => Promise<void>;
}

/**
 * The user's preferences: a checkbox per category (checked: it comes), the types nothing
 * mutes shown locked, optional mutes per type, and quiet hours in a time zone (the browser's
 * unless chosen). Saved whole; preferences saved on another device replace the form while it
 * holds no change of its own.
 */
export function PreferencesPanel({ id, info, strings, onSave }: PreferencesPanelProps): ReactNode {
  const server = info?.preferences;
  const [source, setSource] = useState(server);
  const [draft, setDraft] = useState(() => toDraft(server));
  const [dirty, setDirty] = useState(false);
  const [note, setNote] = useState<"saving" | "saved" | null>(null);
  if (server !== source) {
    // New preferences from the server (a load, a save here or on another device).
    setSource(server);
    if (!dirty) setDraft(toDraft(server));
  }
  const zones = useMemo(() => timeZones(draft.zone), [draft.zone]);

  const change = (patch: Partial<Draft>): void => {
    setDraft({ ...draft, ...patch });
    setDirty(true);
    setNote(null);
  };

  const critical = new Set(info?.critical_types);
  const categories = info?.categories.length ? info.categories : CATEGORIES;
  const types = info?.types ?? [];
  const sameTimes = draft.quiet && draft.start === draft.end;

  const submit = (event: SyntheticEvent<HTMLFormElement, SubmitEvent>): void => {
    event.preventDefault();
    if (note === "saving" || sameTimes) return;
    setNote("saving");
    onSave(fromDraft(draft)).then(
      () => {
        setDirty(false);
        setNote("saved");
      },
      () => {
        // The refusal is shown as the inbox's error; the changes stay to be corrected.
        setNote(null);
      },
    );
  };

  if (info === null) {
    return (
      <p id={id} className="tn-bell__note" role="status">
        {strings.loading}
      </p>
    );
  }

  const lock = (
    <span className="tn-bell__lock">
      <LockIcon />
      {strings.locked}
    </span>
  );

  return (
    <form id={id} className="tn-bell__prefs" aria-label={strings.preferences} onSubmit={submit}>
      <fieldset className="tn-bell__fieldset">
        <legend>{strings.categoriesLegend}</legend>
        {categories.map((category) => (
          <label key={category} className="tn-bell__check">
            <input
              type="checkbox"
              name="category"
              value={category}
              checked={!draft.categories.has(category)}
              onChange={(event) => {
                change({ categories: toggled(draft.categories, category, !event.target.checked) });
              }}
            />
            {strings.categoryName(category)}
          </label>
        ))}
      </fieldset>
      {critical.size > 0 && (
        <fieldset className="tn-bell__fieldset">
          <legend>{strings.criticalLegend}</legend>
          {[...critical].map((type) => (
            <label key={type} className="tn-bell__check" data-locked="true">
              <input type="checkbox" name="critical" value={type} checked disabled />
              {strings.typeName(type)}
              {lock}
            </label>
          ))}
        </fieldset>
      )}
      {types.length > 0 && (
        <details className="tn-bell__types">
          <summary>{strings.typesSummary}</summary>
          {categories.map((category) => {
            const mine = types.filter((t) => t.category === category);
            if (!mine.length) return null;
            const off = draft.categories.has(category);
            return (
              <fieldset key={category} className="tn-bell__fieldset">
                <legend>{strings.categoryName(category)}</legend>
                {mine.map(({ type }) => {
                  const locked = critical.has(type);
                  return (
                    <label key={type} className="tn-bell__check" data-locked={locked}>
                      <input
                        type="checkbox"
                        name="type"
                        value={type}
                        checked={locked || (!off && !draft.types.has(type))}
                        disabled={locked || off}
                        onChange={(event) => {
                          change({ types: toggled(draft.types, type, !event.target.checked) });
                        }}
                      />
                      {strings.typeName(type)}
                      {locked && lock}
                    </label>
                  );
                })}
              </fieldset>
            );
          })}
        </details>
      )}
      <fieldset className="tn-bell__fieldset">
        <legend>{strings.quietHours}</legend>
        <label className="tn-bell__check">
          <input
            type="checkbox"
            name="quiet"
            checked={draft.quiet}
            onChange={(event) => {
              change({ quiet: event.target.checked });
            }}
          />
          {strings.quietHoursEnable}
        </label>
        <p className="tn-bell__hint">{strings.quietHoursHelp}</p>
        {draft.quiet && (
          <div className="tn-bell__quiet">
            <label>
              {strings.quietStart}
              <input
                type="time"
                name="start"
                required
                value={draft.start}
                onChange={(event) => {
                  change({ start: event.target.value });
                }}
              />
            </label>
            <label>
              {strings.quietEnd}
              <input
                type="time"
                name="end"
                required
                value={draft.end}
                onChange={(event) => {
                  change({ end: event.target.value });
                }}
              />
            </label>
            <label className="tn-bell__zone">
              {strings.timeZone}
              <select
                name="time_zone"
                value={draft.zone}
                onChange={(event) => {
                  change({ zone: event.target.value });
                }}
              >
                {zones.map((zone) => (
                  <option key={zone} value={zone}>
                    {zone}
                  </option>
                ))}
              </select>
            </label>
            {sameTimes && (
              <p className="tn-bell__invalid" role="alert">
                {strings.quietSameTimes}
              </p>
            )}
          </div>
        )}
      </fieldset>
      <div className="tn-bell__savebar">
        <button type="submit" className="tn-bell__save" aria-disabled={note === "saving" || sameTimes}>
          {strings.save}
        </button>
        <span className="tn-bell__saved" role="status">
          {note === "saving" ? strings.saving : note === "saved" ? strings.saved : ""}
        </span>
      </div>
    </form>
  );
}

function LockIcon(): ReactNode {
  return (
    <svg
      className="tn-bell__lock-icon"
      viewBox="0 0 24 24"
      aria-hidden="true"
      focusable="false"
      fill="none"
      stroke="currentColor"
      strokeWidth="2"
      strokeLinecap="round"
      strokeLinejoin="round"
    >
      <rect x="5" y="11" width="14" height="10" rx="2" />
      <path d="M8 11V7a4 4 0 0 1 8 0v4" />
    </svg>
  );
}
