"""Markdown as one standalone HTML page, every image embedded: report.html, and `rnngan compare
--format html` with the same stylesheet.

The markdown is the source of truth (what GitHub shows in a pull request); this renders the same
text with markdown-it (CommonMark plus GFM tables) and replaces each local image and link with a
data: URI, so the file can be mailed, attached to a CI run or opened offline with nothing beside it.
"""
from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

from markdown_it import MarkdownIt

# GitHub-like reading: a centred column about as wide as a pull request's, tables that wrap
# their text rather than run off the page, figures shrunk to the column.
STYLE = """
:root { color-scheme: light; }
body { font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif;
       color: #1f2328; background: #fff; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 24px 32px 64px; box-sizing: border-box; }
h1 { font-size: 1.8em; border-bottom: 1px solid #d1d9e0; padding-bottom: .3em; }
h2 { font-size: 1.4em; border-bottom: 1px solid #d1d9e0; padding-bottom: .3em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13px; max-width: 100%; }
th, td { border: 1px solid #d1d9e0; padding: 4px 8px; overflow-wrap: anywhere; }
th { background: #f6f8fa; }
tr:nth-child(2n) td { background: #fbfcfd; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: #eff1f3; padding: .1em .3em; border-radius: 4px; overflow-wrap: anywhere; }
details { margin: 12px 0; }
summary { cursor: pointer; font-weight: 600; }
"""

_LOCAL = re.compile(r'(src|href)="(?!https?:|data:|#|mailto:)([^"]+)"')


class ReportHtmlError(ValueError):
    """The markdown links a file that is not there to embed."""


def _data_uri(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def markdown_to_html(markdown: str, base: Path, raw_html: bool = True) -> str:
    """A standalone HTML page of `markdown`; links relative to `base` are embedded. With
    `raw_html` false, HTML in the text is shown as text (names from elsewhere, as in `rnngan compare`)."""
    body = MarkdownIt("commonmark", {"html": raw_html}).enable("table").render(markdown)
    cache: dict[str, str] = {}

    def embed(match: re.Match) -> str:
        attr, target = match.group(1), html.unescape(match.group(2))
        path = base / target
        if not path.is_file():
            raise ReportHtmlError(f"report.md links {target}, which is not in {base}")
        if target not in cache:
            cache[target] = _data_uri(path)
        return f'{attr}="{cache[target]}"'

    body = _LOCAL.sub(embed, body)
    title = re.search(r"<h1>(.*?)</h1>", body, re.S)
    title_text = re.sub(r"<[^>]+>", "", title.group(1)) if title else "rnngan report"
    return ("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{title_text}</title>\n<style>{STYLE}</style>\n</head>\n"
            f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n")
