"""Figures written beside the report (for the Markdown) and embedded in the HTML."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from catdog.plots import plt


def png(data: bytes, name: str, out_dir: Path) -> dict:
    """PNG bytes DATA saved as OUT_DIR/NAME and as a data URI: {"file", "data_uri"}."""
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"file": name, "data_uri": "data:image/png;base64," + base64.b64encode(data).decode()}


def figure(fig, name: str, out_dir: Path, dpi: int = 90) -> dict:
    """FIG as a PNG beside the report (NAME in OUT_DIR) and embedded; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return png(buffer.getvalue(), name, out_dir)


def thumbnail_uri(image) -> str:
    """An image array as an inline JPEG (a tenth of a PNG's size), for the HTML alone."""
    buffer = io.BytesIO()
    plt.imsave(buffer, image, format="jpeg", pil_kwargs={"quality": 85})
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
