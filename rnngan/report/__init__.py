"""The report stage and what it is made of, one module per part:

- `stage`: `write_report`, the stage itself: it reads the compare stage's numbers and the runs'
  files and writes reports/ (report.md, report.html, figures/, plots/, metrics.json) all or nothing;
- `values`: the published numbers (metrics.json), rounded;
- `verdict`: the seed-level tests in sentences, tiers and the pairwise table;
- `markdown`: report.md, section by section;
- `figures`, `attributes`: the plots and sample grids; the attribute-coverage section and its figure;
- `html`: the standalone report.html from the markdown;
- `formatting`: how a number, an interval or a variant's name is written (shared with `rnngan compare`).
"""
