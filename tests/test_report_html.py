"""report.html is report.md as one standalone page: every image embedded, and a real browser
(headless Chromium, Debian's package) shows every image and nothing runs off the page."""
import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import PROJECT
from rnngan.grids import save_grid
from rnngan.report.html import ReportHtmlError, markdown_to_html

# Runs in the page after it loaded (details opened, so folded tables are measured too) and leaves
# its findings in a <pre> that --dump-dom prints.
CHECK_JS = """
window.addEventListener("load", () => {
  document.querySelectorAll("details").forEach(d => { d.open = true; });
  const vw = document.documentElement.clientWidth;
  const main = document.querySelector("main").getBoundingClientRect();
  const images = [...document.images].map(i => ({alt: i.alt, loaded: i.complete && i.naturalWidth > 0}));
  const overflow = [];
  for (const el of document.querySelectorAll("main *")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const limit = (el.tagName === "TABLE" || el.tagName === "IMG") ? main.right : vw;
    if (r.right > limit + 0.5 || r.left < -0.5)
      overflow.push(`${el.tagName} right=${r.right.toFixed(0)} > ${limit.toFixed(0)}: ` +
                    (el.textContent || el.alt || "").slice(0, 60));
  }
  const out = document.createElement("pre");
  out.id = "rnngan-check";
  out.textContent = JSON.stringify({viewport: vw, page_width: document.documentElement.scrollWidth,
                                    images, overflow});
  document.body.appendChild(out);
});
"""
REPORT_WIDTHS = (1280, 1024)   # a desktop browser and a narrow laptop window


def find_chromium() -> str | None:
    for name in (os.environ.get("RNNGAN_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


needs_chromium = pytest.mark.skipif(
    find_chromium() is None,
    reason="headless Chromium not found: install Debian's package (apt-get install chromium; .ci/run does) "
           "or point RNNGAN_CHROMIUM at a Chromium binary")


def browser_check(page: Path, width: int, tmp_path: Path) -> dict:
    """Open a copy of `page` with CHECK_JS in headless Chromium at `width` CSS pixels."""
    probe = tmp_path / f"probe-{width}-{page.name}"
    probe.write_text(page.read_text().replace("</body>", f"<script>{CHECK_JS}</script>\n</body>"))
    r = subprocess.run([find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--window-size={width},900",
                        "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                       capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="rnngan-check">(.*?)</pre>', r.stdout, re.S)
    assert found, f"no check result from Chromium (exit {r.returncode}):\n{r.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&"))


def assert_page_ok(result: dict, expected_images: int) -> None:
    assert len(result["images"]) == expected_images, result["images"]
    assert all(i["loaded"] for i in result["images"]), [i for i in result["images"] if not i["loaded"]]
    assert result["overflow"] == [], result["overflow"]
    assert result["page_width"] <= result["viewport"]


def markdown_images(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)


# --- the HTML file itself ---------------------------------------------------------------------

def test_markdown_to_html_embeds_every_local_image_and_link(tmp_path):
    save_grid(np.zeros((4, 8, 8, 3), np.uint8), tmp_path / "figures" / "a.png")
    md = "# Title\n\n![a](figures/a.png)\n\n[full size](figures/a.png) and [docs](https://example.org)\n"
    page = markdown_to_html(md, tmp_path)
    assert "<title>Title</title>" in page
    png = base64.b64encode((tmp_path / "figures" / "a.png").read_bytes()).decode()
    assert page.count(f"data:image/png;base64,{png}") == 2
    assert 'src="figures/' not in page and 'href="figures/' not in page
    assert 'href="https://example.org"' in page


def test_markdown_to_html_renders_tables_and_details(tmp_path):
    md = "| a | b |\n| --- | ---: |\n| 1 | 2 |\n\n<details><summary>more</summary>\n\ntext\n\n</details>\n"
    page = markdown_to_html(md, tmp_path)
    assert "<table>" in page and '<td style="text-align:right">2</td>' in page
    assert "<details><summary>more</summary>" in page


def test_markdown_to_html_names_a_missing_image(tmp_path):
    with pytest.raises(ReportHtmlError, match="figures/gone.png"):
        markdown_to_html("![x](figures/gone.png)\n", tmp_path)


# --- the pipeline's report --------------------------------------------------------------------

@pytest.mark.e2e
def test_report_md_links_only_figures_that_exist_and_uses_no_html_github_strips(finished_project):
    reports = finished_project.root / "reports"
    md = (reports / "report.md").read_text()
    images = markdown_images(md)
    assert "figures/samples.jpg" in images and "figures/losses.png" in images
    for link in images + re.findall(r"\]\((figures/[^)]+)\)", md):
        assert link.startswith("figures/") and (reports / link).is_file(), link
    assert set(re.findall(r"</?([a-zA-Z]+)", md)) <= {"details", "summary"}
    # GitHub shows a table only when every row has the header's number of cells
    for block in re.findall(r"((?:^\|.*\|\n)+)", md, re.M):
        rows = block.strip().splitlines()
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(widths) == 1, block


@pytest.mark.e2e
def test_report_html_is_report_md_with_every_image_embedded(finished_project):
    reports = finished_project.root / "reports"
    page = (reports / "report.html").read_text()
    md = (reports / "report.md").read_text()
    assert page.count("<img ") == len(markdown_images(md))
    assert 'src="figures/' not in page and "data:image/png;base64," in page
    assert "Which variant is better" in page and "Data provenance" in page and "Environment" in page


@pytest.mark.e2e
def test_report_html_and_figures_each_stay_under_2_mb_with_sample_grids_as_jpeg(finished_project):
    reports = finished_project.root / "reports"
    figures = list((reports / "figures").iterdir())
    assert (reports / "report.html").stat().st_size < 2 * 2 ** 20
    assert sum(f.stat().st_size for f in figures) < 2 * 2 ** 20
    grids = sorted(f.name for f in figures if f.name.startswith("samples"))
    assert grids and all(name.endswith(".jpg") for name in grids), grids
    assert "data:image/jpeg;base64," in (reports / "report.html").read_text()
    plots = [f for f in figures if f.suffix == ".png"]
    assert plots and all(f.read_bytes()[25] == 3 for f in plots)      # PNG colour type 3: a palette


@pytest.mark.e2e
def test_pipeline_report_first_screen_names_the_commit_and_recipe_and_no_number_leaves_its_range(finished_project):
    from test_report_first_screen import first_screen, intervals, paragraphs_twice, signed_zeros

    reports = finished_project.root / "reports"
    md = (reports / "report.md").read_text()
    top = first_screen(md)
    built_at = finished_project.run("git", "rev-parse", "HEAD~1").stdout.strip()    # before "first repro"
    assert f"Built from commit `{built_at[:12]}`. Recipe: the code's defaults except " in top
    assert "`train.steps` 6 (default 650)" in top and "`model.hidden` 16 (default 128)" in top
    assert "- **No variant is separated" in top or "is better than" in top
    for text in (md, (reports / "report.html").read_text()):
        assert signed_zeros(text) == []
    assert paragraphs_twice(md) == []
    for value, lo, hi in intervals(md, "FID") + intervals(md, "KID"):
        assert 0 <= value and 0 <= lo <= hi, (value, lo, hi)
    metrics = json.loads((reports / "metrics.json").read_text())
    for values in [*metrics["cells"].values(), metrics["real"]]:
        assert 0 <= values["fid_lo"] <= values["fid_hi"] and 0 <= values["kid_lo"] <= values["kid_hi"]


@needs_chromium
@pytest.mark.e2e
@pytest.mark.parametrize("width", REPORT_WIDTHS)
def test_pipeline_report_html_in_chromium_loads_every_image_and_fits_the_page(finished_project, width, tmp_path):
    reports = finished_project.root / "reports"
    expected = len(markdown_images((reports / "report.md").read_text()))
    assert_page_ok(browser_check(reports / "report.html", width, tmp_path), expected)


@needs_chromium
def test_committed_default_report_html_in_chromium_loads_every_image_and_fits_the_page(tmp_path):
    """The report the default `dvc repro` published, as a reviewer opens it."""
    reports = PROJECT / "reports"
    expected = len(markdown_images((reports / "report.md").read_text()))
    assert_page_ok(browser_check(reports / "report.html", 1024, tmp_path), expected)


@needs_chromium
def test_browser_check_catches_a_broken_image_and_a_table_wider_than_the_page(tmp_path):
    wide = "| " + " | ".join(f"column_{i}_with_a_long_name" for i in range(80)) + " |\n"
    wide += "| " + " | ".join("---" for _ in range(80)) + " |\n"
    page = markdown_to_html(f"# t\n\n![broken](data:image/png;base64,AAAA)\n\n{wide}", tmp_path)
    (tmp_path / "bad.html").write_text(page)
    result = browser_check(tmp_path / "bad.html", 1024, tmp_path)
    assert [i["loaded"] for i in result["images"]] == [False]
    assert any(o.startswith("TABLE") for o in result["overflow"]), result["overflow"]
