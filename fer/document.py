"""The report as a list of blocks, each rendered to Markdown and to one self-contained HTML page, so the two
never disagree. Formulas are drawn by matplotlib's mathtext and embedded as images: the page needs no
script, font or network to show them."""
import base64
import html
import io
import re
import struct
from pathlib import Path

from .plots import plt

# The page's text column; a figure wider than this would be shrunk and its text with it.
PAGE_WIDTH_PX = 1120
CSS_DPI = 96  # a CSS inch


def heading(text):
    return ("h", text)


def para(text):
    return ("p", text)


def note(text):
    """A warning the reader must not miss: a run that did not learn, a blank map."""
    return ("note", text)


def image(path, caption):
    return ("img", Path(path), caption)


def table(header, rows):
    return ("table", header, rows)


def math(name, tex):
    return ("math", name, tex)


def missing(what, command):
    return ("missing", what, command)


def shown_path(path):
    """A path as the reader would type it: relative to here when it is under here."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(Path.cwd())) if resolved.is_relative_to(Path.cwd()) else str(path)


def png_size(data):
    """(width, height) in pixels of PNG bytes."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", data[16:24])


def png_dpi(data):
    """The resolution a PNG was saved at (its pHYs chunk), 72 if it does not say."""
    at = data.find(b"pHYs")
    if at < 0:
        return 72.0
    per_metre, _, unit = struct.unpack(">IIB", data[at + 4:at + 13])
    return per_metre * 0.0254 if unit == 1 else 72.0


def shown_width(data):
    """CSS pixels at which a figure is shown: its size in inches at print scale, so a 10-point label is read
    at 10 points; never wider than the page."""
    width, _ = png_size(data)
    return min(PAGE_WIDTH_PX, round(width / png_dpi(data) * CSS_DPI))


def formula_png(tex, fontsize=15):
    """A formula drawn by matplotlib's mathtext, as PNG bytes."""
    fig = plt.figure()
    fig.text(0, 0, f"${tex}$", fontsize=fontsize)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight", pad_inches=0.04, transparent=False)
    plt.close(fig)
    return buffer.getvalue()


def to_markdown(blocks, out_dir):
    lines = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            lines += [f"## {block[1]}", ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "note":
            lines += [f"> **Note:** {block[1]}", ""]
        elif kind == "img":
            lines += [f"![{block[2]}]({block[1].resolve().relative_to(out_dir.resolve())})", "", f"*{block[2]}*", ""]
        elif kind == "table":
            lines += ["| " + " | ".join(block[1]) + " |", "|" + "---|" * len(block[1])]
            lines += ["| " + " | ".join(map(str, row)) + " |" for row in block[2]] + [""]
        elif kind == "math":
            lines += [f"**{block[1]}**", "", "$$", block[2], "$$", ""]
        elif kind == "missing":
            lines += [f"> **Missing: {block[1]}.** Make it with `{block[2]}`", ""]
    return "\n".join(lines)


def inline(text):
    """Markdown's `code` and **bold** in already escaped text."""
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def embedded(data, alt):
    return (f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}" width="{shown_width(data)}" '
            f'alt="{html.escape(alt)}">')


STYLE = (f"body{{font-family:system-ui,sans-serif;max-width:{PAGE_WIDTH_PX}px;margin:2em auto;padding:0 1em;"
         "line-height:1.45;color:#222}img{max-width:100%;height:auto}figure{margin:1em 0}"
         "figcaption{color:#444;font-size:.95em}table{border-collapse:collapse;margin:1em 0;font-size:.95em}"
         "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}"
         ".math{margin:.6em 0 1em}.math b{display:block;font-size:.95em;color:#444}"
         ".missing,.note{background:#fff4e5;border-left:4px solid #f0a020;padding:.5em .8em}")


def to_html(blocks, title):
    esc = html.escape
    body = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            body.append(f"<h2>{esc(block[1])}</h2>")
        elif kind == "p":
            body.append(f"<p>{inline(esc(block[1]))}</p>")
        elif kind == "note":
            body.append(f'<p class="note"><b>Note:</b> {inline(esc(block[1]))}</p>')
        elif kind == "img":
            body.append(f"<figure>{embedded(block[1].read_bytes(), block[2])}"
                        f"<figcaption>{inline(esc(block[2]))}</figcaption></figure>")
        elif kind == "table":
            head = "".join(f"<th>{esc(str(h))}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{inline(esc(str(c)))}</td>" for c in row) + "</tr>"
                           for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "math":
            body.append(f'<div class="math"><b>{esc(block[1])}</b>{embedded(formula_png(block[2]), block[1])}</div>')
        elif kind == "missing":
            body.append(f'<p class="missing"><b>Missing: {esc(block[1])}.</b> Make it with '
                        f"<code>{esc(block[2])}</code></p>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title><style>{STYLE}</style>"
            f"</head><body><h1>{esc(title)}</h1>{''.join(body)}</body></html>\n")
