"""The report's index.html: one self-contained page (inline CSS, SVG plots and a little JS).

Nothing is fetched: no CDN, no web font, no script from elsewhere, so the page works from
disk (file://) and offline; videos are referenced by paths relative to the report folder.
After load the page sets ``data-rendered="1"`` and ``data-videos-ready`` (videos whose
metadata loaded) on <body>, for headless checks.
"""

from __future__ import annotations

import json
from html import escape

from thbench.report_plots import scatter, strip
from thbench.report_table import (
    ARROWS,
    DIRECTION_WORDS,
    FAILED,
    NOT_RUN,
    OK,
    Column,
    Report,
    fmt,
    shown_videos,
)

REASON_CHARS = 60

CSS = """
:root{--ink:#1c2430;--muted:#5c6878;--line:#dde3ea;--soft:#f4f6f9;--accent:#1f6fb2;
--best:#e3f4ea;--bestink:#0f6b3f;--bad:#b3261e;--warn:#fff4d6;--warnline:#e9c46a}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);background:#fff}
main{max-width:1400px;margin:0 auto;padding:28px 28px 64px}
h1{font-size:26px;margin:0 0 4px;letter-spacing:-.01em}
h2{font-size:20px;margin:40px 0 12px;padding-bottom:6px;border-bottom:2px solid var(--line)}
h3{font-size:16px;margin:24px 0 8px}
.sub{color:var(--muted);margin:0 0 18px}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0 0 18px;
background:var(--soft);border-radius:8px;padding:14px 18px}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0}
.banner{border-left:5px solid var(--warnline);background:var(--warn);padding:10px 14px;
border-radius:6px;margin:10px 0}
.banner.base{border-color:#9db4cc;background:#eef4fa}
.tag{display:inline-block;font-size:12px;padding:0 7px;border-radius:10px;margin-left:6px;
background:#eef4fa;color:#2b5a85;vertical-align:1px}
.tag.reh{background:var(--warn);color:#7a5600}.tag.out{background:#f1ecf8;color:#5b3f87}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:14px;min-width:60%}
th,td{padding:7px 9px;border-bottom:1px solid var(--line);text-align:right;vertical-align:top}
th{background:var(--soft);font-weight:600;vertical-align:bottom;line-height:1.3}
th small{display:block;font-weight:400;color:var(--muted);white-space:nowrap}
th:first-child,td:first-child{text-align:left}
tbody tr:hover{background:#fafbfd}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
td small{display:block;color:var(--muted);font-size:11px}
td.runs{white-space:nowrap;font-size:13px;text-align:left}
td.runs .f{color:var(--bad)}td.runs .n{color:var(--muted)}
td.best{background:var(--best);color:var(--bestink);font-weight:700}
td.failed{color:var(--bad)}td.nc,td.notrun{color:var(--muted);font-style:italic}
td .why{max-width:190px;display:inline-block;white-space:normal;text-align:left;font-size:13px;
overflow-wrap:anywhere}
td.span{text-align:left}td.span .why{max-width:none}
.legend{color:var(--muted);font-size:13px;margin:6px 0 0}
.plots{display:flex;flex-wrap:wrap;gap:18px}
.plot{border:1px solid var(--line);border-radius:8px;padding:8px;background:#fff}
svg text{font-family:inherit;fill:var(--ink)}
.case{border:1px solid var(--line);border-radius:10px;padding:4px 20px 18px;margin:18px 0}
blockquote{margin:8px 0;padding:8px 14px;background:var(--soft);border-radius:6px}
.videos{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:14px;
margin-top:12px}
.vcard{border:1px solid var(--line);border-radius:8px;padding:8px;background:#fff}
.vcard h4{margin:0 0 6px;font-size:14px}
.vcard video{width:100%;border-radius:4px;background:#000;display:block}
.vcard .fail{color:var(--bad);font-size:13px;padding:10px;background:#fdf0ef;border-radius:4px;
overflow-wrap:anywhere;aspect-ratio:1/1;overflow:hidden}
.vcard .fail.nr{color:var(--muted);background:var(--soft)}
table.info td,table.info th{text-align:left;font-size:13px}table.info pre{margin:0}
button{font:inherit;font-size:13px;padding:5px 14px;border-radius:6px;border:1px solid #b8c4d2;
background:#fff;cursor:pointer;margin-right:6px}button:hover{background:var(--soft)}
pre{background:var(--soft);padding:8px 10px;border-radius:6px;font-size:12px;overflow-x:auto;
white-space:pre-wrap}
footer{margin-top:48px;color:var(--muted);font-size:12px}
"""

JS = """
(function(){
  var body=document.body, ready=0;
  body.dataset.videosReady="0";
  function mark(){ready+=1;body.dataset.videosReady=String(ready);}
  document.querySelectorAll("video").forEach(function(v){
    if(v.readyState>=1){mark();}else{v.addEventListener("loadedmetadata",mark,{once:true});}
  });
  document.querySelectorAll("button[data-group]").forEach(function(b){
    b.addEventListener("click",function(){
      var vids=document.querySelectorAll("#"+b.dataset.group+" video"), play=b.dataset.act==="play";
      vids.forEach(function(v){v.pause();if(play){v.currentTime=0;}});
      if(play){vids.forEach(function(v){var p=v.play();if(p&&p.catch){p.catch(function(){});}});}
    });
  });
  body.dataset.rendered="1";
})();
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _full(entry: dict) -> str:
    """What a tooltip says: the cell's text, and for "not run" also why."""
    reason = entry.get("reason")
    return f"not run: {reason}" if entry["state"] == "not run" and reason else entry["text"]


def _short(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


# --- tables --------------------------------------------------------------------------------------

def _model_name(report: Report, model: str) -> str:
    flags = report.flags(model)
    tags = ('<span class="tag">baseline</span>' if flags["baseline"] else "") + \
        ('<span class="tag reh">rehearsal</span>' if flags["rehearsal"] else "") + \
        ('<span class="tag out">outside video</span>' if flags["outside"] else "")
    return f"<b>{_e(model)}</b>{tags}"


def _td(entry: dict, column: Column) -> str:
    state, text = entry["state"], entry["text"]
    if state != "value":
        css = {"failed": "failed", "not computed": "nc", "not run": "notrun"}[state]
        return (f'<td class="{css}" title="{_e(_full(entry))}"><span class="why">'
                f"{_e(_short(text))}</span></td>")
    note = f"n={entry['n']}" + {"sd": " · sd", "range": " · min–max"}.get(entry["spread"], "")
    extra = [f"{entry['failed']} failed"] if entry["failed"] else []
    extra += [f"{entry['not_run']} not run"] if entry["not_run"] else []
    extra += [f"not computed in some: {w}" for w in entry["not_computed"]]
    title = f"{column.label}: {text} (n={entry['n']} of {entry['cells']} cells" + \
        (f"; {'; '.join(extra)}" if extra else "") + ")"
    best = " best" if entry["best"] else ""
    return f'<td class="num{best}" title="{_e(title)}">{_e(text)}<small>{_e(note)}</small></td>'


def _heading(column: Column) -> str:
    words = DIRECTION_WORDS.get(column.direction, "")
    arrow = "" if column.direction == "none" else f"{ARROWS.get(column.direction, '·')} "
    note = " · ".join(p for p in (column.unit, arrow + words.split(",")[0]) if p)
    return f'<th title="{_e(words)}">{_e(column.label)}<small>{_e(note)}</small></th>'


def _table(report: Report, rows: list[dict]) -> str:
    heads = "".join(_heading(c) for c in report.columns)
    body = []
    for row in rows:
        runs = row["runs"]
        status = f"{runs[OK]} ok" + \
            (f'<br><span class="f">{runs[FAILED]} failed</span>' if runs[FAILED] else "") + \
            (f'<br><span class="n">{runs[NOT_RUN]} not run</span>' if runs[NOT_RUN] else "")
        entries = [row["columns"][c.id] for c in report.columns]
        if not runs[OK]:  # nothing ran: one reason across the row, not the same in every column
            entry = entries[0]
            css = "failed" if entry["state"] == "failed" else "notrun"
            cells = (f'<td class="{css} span" colspan="{len(entries)}" title="{_e(_full(entry))}">'
                     f'<span class="why">{_e(_short(entry["text"]))}</span></td>')
        else:
            cells = "".join(_td(e, c) for e, c in zip(entries, report.columns, strict=True))
        body.append(f'<tr><td>{_model_name(report, row["model"])}</td><td class="runs">{status}'
                    f"</td>{cells}</tr>")
    return (f'<div class="scroll"><table><thead><tr><th>model</th><th>runs</th>{heads}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table></div>')


LEGEND = ('<p class="legend">Each cell: mean over the runs with a value; ± sample standard '
          "deviation when n ≥ 3, (min–max) when n = 2; n = how many values. ↑ higher is better, "
          "↓ lower is better, · context (no best). Green = best mean in its column; rehearsal runs "
          "(stand-in weights) compete only when every model is one. Hover a cell for details "
          "and full reasons.</p>")


# --- sections ------------------------------------------------------------------------------------

def _header(report: Report) -> str:
    hosts = sorted({c.host for c in report.cells if c.host})
    repeats = sorted({b["repeat"] for b in report.benches if b.get("repeat")})
    benches = ", ".join(f"{b['bench_id']} ({b.get('created') or 'no date'})" for b in report.benches)
    outside = sum(c.outside for c in report.cells)
    norm = "; ".join(", ".join(f"{k} {v}" for k, v in n.items()) for n in report.normalised)
    rows = [("benches", benches or "none (score records only)"),
            ("score records", f"{outside} outside video(s)" if outside else ""),
            ("report made", report.now), ("machines", "; ".join(hosts) or "not recorded"),
            ("models", ", ".join(report.models)),
            ("cases", str(len(report.cases))), ("repeats", ", ".join(map(str, repeats))),
            ("scoring input", norm or "no score records"),
            ("cells", f"{len(report.cells)}: " + ", ".join(
                f"{sum(c.status == s for c in report.cells)} {s}" for s in (OK, FAILED, NOT_RUN)))]
    meta = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows if v)
    banners = []
    base = [m for m in report.models if report.flags(m)["baseline"]]
    if base:
        banners.append(f'<div class="banner base"><b>Baselines: {_e(", ".join(base))}.</b> These '
                       "are not talking-head models but reference points (a still image, a "
                       "mouth opened by loudness): a real model should beat them.</div>")
    reh = [m for m in report.models if report.flags(m)["rehearsal"]]
    if reh:
        banners.append(f'<div class="banner"><b>Rehearsal runs: {_e(", ".join(reh))}.</b> These '
                       "used random stand-in weights to exercise the pipeline; their numbers say "
                       "nothing about the model's quality.</div>")
    if any(c.status == NOT_RUN for c in report.cells):
        banners.append('<div class="banner"><b>Incomplete:</b> some cells never ran (the bench '
                       "was stopped or is still running); they show as “not run”.</div>")
    return (f"<h1>Talking-head bench report</h1><p class=\"sub\">{len(report.models)} models × "
            f"{len(report.cases)} cases</p><dl class=\"meta\">{meta}</dl>{''.join(banners)}")


def _case_title(case) -> str:
    if case.text:
        return f"<blockquote>{_e(case.text)}</blockquote>"
    return f"<p>audio: <b>{_e(case.audio or 'none')}</b></p>" if case.audio or not case.image \
        else f"<p>image: <b>{_e(case.image.rsplit('/', 1)[-1])}</b></p>"


def _videos(report: Report, case, group: str) -> str:
    cards, videos = [], shown_videos(report)
    for model in report.models:
        mine = sorted((c for c in report.cells if c.case == case.key and c.model == model),
                      key=lambda c: c.repeat)
        if not mine:
            continue
        shown = videos.get((case.key, model))
        head = f"<h4>{_model_name(report, model)}</h4>"
        if shown:
            note = f"repeat {shown.repeat} of {len(mine)}" + (f" · {shown.run_id}" if
                                                              shown.run_id else "")
            cards.append(f'<div class="vcard">{head}<video controls preload="metadata" '
                         f'src="{_e(shown.video_href)}"></video><p class="legend">{_e(note)}'
                         "</p></div>")
        else:
            first = next((c for c in mine if c.status == FAILED), mine[0])
            why = {FAILED: "failed: ", NOT_RUN: "not run: "}.get(first.status, "no video: ") + \
                (first.reason or "the run left no video file")
            css = "fail nr" if first.status == NOT_RUN else "fail"
            cards.append(f'<div class="vcard">{head}<div class="{css}" title="{_e(why)}">'
                         f"{_e(why)}</div></div>")
    buttons = (f'<button data-group="{group}" data-act="play">▶ play all</button>'
               f'<button data-group="{group}" data-act="pause">❚❚ pause all</button>')
    return f'<div>{buttons}</div><div class="videos" id="{group}">{"".join(cards)}</div>'


def _metrics_section(report: Report) -> str:
    if not report.metric_info:
        return "<p>No score records: no metric was computed. Score the runs, then report again.</p>"
    items = []
    for metric_id, info in report.metric_info.items():
        direction = info.get("direction") or "none"
        versions = "<br>".join(_e(json.dumps(v, sort_keys=True)) for v in info["versions"])
        settings = "\n".join(json.dumps(v or {}, sort_keys=True) for v in info["settings"])
        items.append(f"<tr><td><b>{_e(info.get('label') or metric_id)}</b><small>{_e(metric_id)}"
                     f"</small></td><td>{ARROWS.get(direction, '·')} {_e(direction)}"
                     f"<small>{_e(info.get('unit') or 'no unit')}</small></td><td>"
                     f"{_e(info.get('about') or '')}</td><td>{_e(info.get('spec') or '')}<small>"
                     f"{_e(info.get('implementation') or '')}</small></td><td>{versions}</td>"
                     f"<td><pre>{_e(settings)}</pre></td></tr>")
    costs = []
    for name, entry in report.spec_costs.items():
        values = entry["cost_s_per_video_s"]
        cost = f"{fmt(sum(values) / len(values))} s per video second (mean of {len(values)})" \
            if values else "not recorded"
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(entry["statuses"].items()))
        costs.append(f"<tr><td><b>{_e(name)}</b></td><td>{_e(cost)}</td><td>{_e(statuses)}</td></tr>")
    return ('<div class="scroll"><table class="info"><thead><tr><th>metric</th><th>direction'
            "</th><th>about</th><th>spec · implementation</th><th>version</th><th>settings</th>"
            f"</tr></thead><tbody>{''.join(items)}</tbody></table></div>"
            '<h3>Metric cost</h3><table class="info"><thead><tr><th>spec</th><th>cost</th>'
            f"<th>scorings</th></tr></thead><tbody>{''.join(costs)}</tbody></table>")


def render(report: Report) -> str:
    """The whole page as one string (deterministic for the same report)."""
    plots = [scatter(report)] + [strip(report, c) for c in report.columns if c.kind == "metric"]
    cases = []
    for i, case in enumerate(report.cases):
        tags = "".join(f'<span class="tag">{_e(t)}</span>' for t in case.tags)
        cases.append(f'<section class="case"><h3>case {_e(case.key)}{tags}</h3>{_case_title(case)}'
                     f"{_table(report, report.per_case[case.key])}"
                     f"{_videos(report, case, f'videos-{i}')}</section>")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>Talking-head bench report</title>'
            f"<style>{CSS}</style></head><body><main>{_header(report)}"
            f"<h2>Results: all cases</h2>{_table(report, report.summary)}{LEGEND}"
            f'<h2>Plots</h2><div class="plots">{"".join(plots)}</div>'
            f"<h2>Cases</h2>{''.join(cases)}<h2>Metrics</h2>{_metrics_section(report)}"
            "<footer>Made by talking-head-bench `invoke report` from stored records; nothing was "
            "re-run. The data is also in results.csv and results.json.</footer>"
            f"</main><script>{JS}</script></body></html>\n")
