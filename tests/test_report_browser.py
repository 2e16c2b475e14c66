"""Slow: the report as a teammate sees it, in a real headless Chromium."""

import re
import subprocess

import pytest

from catdog import training
from catdog.report.build import build_report
from helpers import chromium, store_overrides

CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => i.complete && i.naturalWidth > 0);
  document.body.setAttribute("data-images", images.length + ":" + images.filter(Boolean).length);
  document.body.setAttribute("data-tables", document.querySelectorAll("table").length);
});
</script></body>"""


@pytest.mark.slow
def test_report_renders_in_a_browser(make_cfg, tmp_path):
    flags = [*chromium(tmp_path), "--virtual-time-budget=10000"]
    store = [*store_overrides(tmp_path), "tracking.experiment=browser", "train.log_model=false"]
    for variant in ("cnn", "transfer"):
        training.train(make_cfg(variant, store))
    build_report("browser", tmp_path / "report", log_run=False)
    page = tmp_path / "report" / "checked.html"
    page.write_text((tmp_path / "report" / "report.html").read_text().replace("</body>", CHECK))
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    images = re.search(r'data-images="(\d+):(\d+)"', dom)
    assert images, dom[-2000:]
    total, loaded = map(int, images.groups())
    assert total >= 4 and loaded == total, f"{loaded} of {total} images rendered"
    assert int(re.search(r'data-tables="(\d+)"', dom).group(1)) >= 3
    assert re.search("cnn vs transfer|transfer vs cnn", dom) and "Recommended: " in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, "--window-size=1300,2000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
