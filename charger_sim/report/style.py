"""The look of the HTML reports: one inline style sheet, the page frame and a little optional JS."""

from __future__ import annotations

from html import escape

from ..protocols.base import HANDSHAKE_STEPS

# ColorBrewer Set2: distinguishable, print-friendly, dark text readable on every one
STEP_COLOURS = {
    0: "#d1d5db",
    1: "#8da0cb",
    2: "#e78ac3",
    3: "#a6d854",
    4: "#ffd92f",
    5: "#fc8d62",
    6: "#e5c494",
    7: "#66c2a5",
}

CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f5f6f8;--card:#fff;--pass:#15803d;--passbg:#ecfdf3;
--fail:#b91c1c;--failbg:#fef2f2;--warn:#b45309;--warnbg:#fffbeb;--accent:#1d4ed8}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:20px 20px 60px}main.wide{max-width:1560px}
h1{font-size:22px;margin:0}h2{font-size:17px;margin:0 0 10px}h3{font-size:14px;margin:18px 0 8px;
text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
header.top{display:flex;justify-content:space-between;align-items:center;gap:16px;background:var(--card);
border:1px solid var(--line);border-radius:10px;padding:16px 20px;margin-bottom:16px}
header.top .sub{color:var(--muted);margin-top:4px}
.status{font-weight:700;font-size:15px;padding:8px 14px;border-radius:8px;white-space:nowrap}
.status.pass{background:var(--passbg);color:var(--pass);border:1px solid #bbf7d0}
.status.fail{background:var(--failbg);color:var(--fail);border:1px solid #fecaca}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;
margin-bottom:16px}
table{border-collapse:collapse;width:100%}
.scroll{overflow-x:auto}
table.summary th,table.summary td{padding:5px 6px}table.summary td.exp{max-width:230px;font-size:12.5px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;background:#fafafa}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr:hover td{background:#fafcff}
.badge{display:inline-block;font-weight:700;font-size:11.5px;padding:1px 8px;border-radius:999px;
letter-spacing:.03em}
.badge.pass{background:var(--passbg);color:var(--pass);border:1px solid #bbf7d0}
.badge.fail{background:var(--failbg);color:var(--fail);border:1px solid #fecaca}
.badge.na{background:#f3f4f6;color:var(--muted);border:1px solid var(--line)}
.muted{color:var(--muted)}
details.scenario{background:var(--card);border:1px solid var(--line);border-radius:10px;margin-bottom:16px}
details.scenario>summary{cursor:pointer;padding:14px 20px;display:flex;gap:12px;align-items:baseline;
flex-wrap:wrap;list-style:none}
details.scenario>summary::-webkit-details-marker{display:none}
details.scenario>summary:before{content:"\\25B8";color:var(--muted);width:10px}
details.scenario[open]>summary:before{content:"\\25BE"}
details.scenario>summary .name{font-weight:650;font-size:15.5px}
.body{padding:0 20px 18px}
.banner{display:flex;gap:18px;align-items:center;border-radius:8px;padding:12px 16px;margin:2px 0 14px}
.banner.pass{background:var(--passbg);border:1px solid #bbf7d0}
.banner.fail{background:var(--failbg);border:1px solid #fecaca}
.banner .big{font-size:20px;font-weight:800;letter-spacing:.04em}
.banner.pass .big{color:var(--pass)}.banner.fail .big{color:var(--fail)}
.banner ul{margin:4px 0 0;padding-left:18px}
.grid2{display:grid;grid-template-columns:1.3fr 1fr;gap:14px}
.box{border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.box h4{margin:0 0 6px;font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
.box p{margin:4px 0}.box ul{margin:4px 0;padding-left:18px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(118px,1fr));gap:10px;margin:14px 0 4px}
.tile{border:1px solid var(--line);border-radius:8px;padding:8px 12px}
.tile .k{font-size:11.5px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.tile .v{font-size:17px;font-weight:650;font-variant-numeric:tabular-nums}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:10px}
svg.chart,svg.gantt{width:100%;height:auto;display:block;background:#fff;border:1px solid var(--line);
border-radius:8px}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg .ctitle{font-size:13px;font-weight:650;fill:var(--fg)}svg .unit{fill:var(--muted);font-weight:400}
svg .tick{font-size:11px;fill:var(--muted)}svg .axis{font-size:11.5px;fill:var(--muted)}
svg .legend{font-size:11.5px;fill:var(--fg)}svg .lane{font-size:12px;fill:var(--fg);font-weight:600}
svg .barlabel{font-size:11.5px;fill:#111827;pointer-events:none}
svg .grid{stroke:#eef0f3;stroke-width:1}svg .frame{fill:none;stroke:#d1d5db}
svg .line{fill:none;stroke-width:1.8;stroke-linejoin:round;stroke-linecap:round}
svg .s1{stroke:#2563eb}svg .s2{stroke:#ea580c;stroke-dasharray:5 3}svg .s3{stroke:#7c3aed}
svg .s4{stroke:#059669}svg .s5{stroke:#dc2626}svg .s6{stroke:#0891b2;stroke-dasharray:5 3}
svg .fault,svg .faultmark{stroke:#dc2626;stroke-width:1.5;stroke-dasharray:3 3}
svg .stopmark{stroke:#991b1b;stroke-width:2}
svg .stopzone{fill:#fee2e2;opacity:.55}
STEPCSS
.legendrow{display:flex;flex-wrap:wrap;gap:12px;margin:6px 0 2px;font-size:12px;color:var(--muted)}
.sw{display:inline-block;width:12px;height:12px;border-radius:3px;vertical-align:-2px;margin-right:4px}
details.more{margin-top:12px}details.more>summary{cursor:pointer;color:var(--accent)}
table.timeline td{font-size:12.5px}table.timeline td.detail{color:var(--muted)}
.side-charger{color:#0e7490;font-weight:600}.side-vehicle{color:#a21caf;font-weight:600}
.repro{margin-top:12px;color:var(--muted);font-size:12.5px}
.tools{display:none;gap:8px;margin:0 0 10px}.js .tools{display:flex}
.tools button{font:inherit;font-size:12.5px;padding:4px 10px;border:1px solid var(--line);border-radius:6px;
background:#fff;cursor:pointer}
table.matrix td,table.matrix th{text-align:center;vertical-align:middle;border:1px solid var(--line)}
table.matrix th.rowhead{text-align:left}
td.cell{font-size:12px;min-width:92px;padding:6px 5px}td.cell b{display:block;font-size:12.5px}
table.matrix th{font-size:12px}
td.cell span{display:block;font-size:11.5px;opacity:.85}
td.cell.ok{background:#ecfdf3;color:var(--pass)}td.cell.bad{background:#fef2f2;color:var(--fail)}
td.cell.warn{background:var(--warnbg);color:var(--warn)}td.cell.na{background:#f9fafb;color:#9ca3af}
footer{color:var(--muted);font-size:12px;margin-top:24px}
@media (max-width:800px){.grid2{grid-template-columns:1fr}.charts{grid-template-columns:1fr}}
@media print{body{background:#fff}details.scenario{break-inside:avoid-page}.tools{display:none!important}}
"""

JS = """
document.documentElement.classList.add('js');
function setAll(open){document.querySelectorAll('details.scenario').forEach(function(d){d.open=open;});}
function openTarget(){var id=decodeURIComponent(location.hash.slice(1));
var el=id&&document.getElementById(id);if(el&&el.tagName==='DETAILS'){el.open=true;}}
window.addEventListener('hashchange',openTarget);window.addEventListener('DOMContentLoaded',openTarget);
"""


def css() -> str:
    steps = "".join(f"svg .st{n}{{fill:{c}}}" for n, c in STEP_COLOURS.items())
    return CSS.replace("STEPCSS", steps)


def step_legend(steps: set[int] | None = None) -> str:
    shown = sorted(steps) if steps else sorted(HANDSHAKE_STEPS)
    items = "".join(
        f'<span><span class="sw" style="background:{STEP_COLOURS.get(n, STEP_COLOURS[0])}"></span>'
        f"{n} {escape(HANDSHAKE_STEPS.get(n, '?'))}</span>"
        for n in shown
    )
    return f'<div class="legendrow">{items}</div>'


def page(title: str, body: str, *, script: bool = True, wide: bool = False) -> str:
    """A complete, self-contained HTML document (inline CSS; the JS only adds conveniences)."""
    js = f"<script>{JS}</script>" if script else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{css()}</style>{js}</head>\n"
        f"<body><main{' class=wide' if wide else ''}>\n{body}\n</main></body></html>\n"
    )
