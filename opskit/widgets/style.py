"""How the panels look: one style sheet, and the few kinds of controls they are built from.

The style sheet travels as a hidden ``HTML`` widget at the top of each panel (a ``<style>`` there applies to the
page); views wrap their HTML in :func:`block` to take it. Controls fill their grid cells and never cut their
labels short (the browser tests check that).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets

# One small style sheet; each panel carries it once (a <style> in an HTML widget applies to the whole page).
STYLE = """<style>
.opskit-w{font-family:var(--jp-ui-font-family,system-ui,sans-serif);font-size:13px;line-height:1.4}
.opskit-w table{border-collapse:collapse;font-size:12px;width:100%}
.opskit-w th{background:#eef1f4;text-align:left;position:sticky;top:0}
.opskit-w th,.opskit-w td{padding:3px 8px;border-bottom:1px solid #dde2e6;vertical-align:top;white-space:nowrap}
.opskit-w tr:nth-child(even) td{background:#f8f9fa}
.opskit-w .scroll{max-height:360px;overflow:auto;border:1px solid #dde2e6}
.opskit-w pre{margin:0;padding:6px 8px;font-size:12px;white-space:pre-wrap;word-break:break-all}
.opskit-w .log{max-height:220px;overflow:auto;display:flex;flex-direction:column-reverse}
.opskit-w .log{background:#1f2430;color:#d8dee9;border-radius:3px}.opskit-w .log pre{flex:none}
.opskit-w .caption{color:#555;margin:2px 0 4px}
.opskit-w .msg{padding:6px 10px;border-radius:3px;border-left:4px solid}
.opskit-w .info{background:#eef4fb;border-color:#3b7dd8}
.opskit-w .success{background:#edf7ef;border-color:#2a9d55}
.opskit-w .warning{background:#fdf6e7;border-color:#e9a23b}
.opskit-w .error{background:#fbeeee;border-color:#c8553d}
.opskit-w .add{color:#1a7f37}.opskit-w .del{color:#b3261e}.opskit-w .hunk{color:#6f42c1}
.opskit-w details.check{margin:4px 0;padding:2px 0;border-bottom:1px solid #dde2e6}
.opskit-w details.check summary{cursor:pointer;padding:3px 0}.opskit-w details.check .msg{margin:4px 0}
.opskit-w .sev-critical,.opskit-w .sev-high,.opskit-w .sev-medium,.opskit-w .sev-low{padding:0 6px;border-radius:3px}
.opskit-w .sev-critical{background:#b00020;color:#fff}.opskit-w .sev-high{background:#c8553d;color:#fff}
.opskit-w .sev-medium{background:#e9a23b}.opskit-w .sev-low{background:#dde2e6}
.opskit-w .state-done{color:#2a9d55}.opskit-w .state-failed{color:#c8553d}.opskit-w .state-skipped{color:#777}
</style>"""


def block(inner: str) -> str:
    """``inner`` (HTML) in opskit's style, as the value of an ``HTML`` widget."""
    return f"<div class='opskit-w'>{inner}</div>"


def style_sheet() -> widgets.HTML:
    """The style sheet as a widget: the first child of every panel."""
    return widgets.HTML(STYLE, layout=widgets.Layout(display="none"))


def short_arn(arn: Any) -> str:
    """``arn:...:task-definition/web:31`` -> ``web:31`` (anything else unchanged)."""
    return str(arn).rsplit("/", 1)[-1] if isinstance(arn, str) else "-"


def field(description: str, value: str = "", placeholder: str = "", width: str = "100px") -> widgets.Text:
    """A labelled text box that fills its grid cell."""
    return widgets.Text(
        value=value,
        description=description,
        placeholder=placeholder,
        style={"description_width": width},
        layout=widgets.Layout(width="auto"),
    )


def form(children: Sequence[widgets.Widget], min_width: str = "260px") -> widgets.GridBox:
    """Fields in as many columns as fit (none narrower than ``min_width``)."""
    return widgets.GridBox(
        list(children),
        layout=widgets.Layout(
            grid_template_columns=f"repeat(auto-fill, minmax({min_width}, 1fr))", grid_gap="4px 12px"
        ),
    )


def checkbox(description: str, value: bool = False) -> widgets.Checkbox:
    """A checkbox whose description is never cut short."""
    return widgets.Checkbox(value=value, description=description, indent=False, layout=widgets.Layout(width="auto"))


def button(description: str, style: str = "", tooltip: str = "", icon: str = "") -> widgets.Button:
    return widgets.Button(
        description=description,
        button_style=style,
        tooltip=tooltip or description,
        icon=icon,
        layout=widgets.Layout(width="auto", min_width="120px"),
    )


def heading(text: str) -> widgets.HTML:
    return widgets.HTML(block(f"<div style='font-weight:600;margin-top:6px'>{html.escape(text)}</div>"))


__all__ = ["STYLE", "block", "button", "checkbox", "field", "form", "heading", "short_arn", "style_sheet"]
