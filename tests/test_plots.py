import csv

import matplotlib.image
import pytest

from grokkit.plots import plot_run_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLUMNS = ["step", "train_loss", "train_accuracy", "val_loss", "val_accuracy"]


def write_metrics(path, columns=COLUMNS):
    rows = [
        {
            "step": s,
            "train_loss": 4.6 / (s + 1),
            "train_accuracy": min(1.0, s / 100),
            "val_loss": 4.6,
            "val_accuracy": 0.01 if s < 1000 else 0.99,
        }
        for s in [0, 10, 100, 1000, 10000]
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_plot_run_curves_writes_png_and_pdf(tmp_path):
    metrics = write_metrics(tmp_path / "metrics.csv")
    out = plot_run_curves(metrics, tmp_path / "figures" / "curves.png", title="x + y (mod 97)")
    assert out == tmp_path / "figures" / "curves.png"
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert matplotlib.image.imread(out).shape[1] > 600
    pdf = out.with_suffix(".pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_plot_run_curves_accepts_row_dicts_with_gaps(tmp_path):
    rows = [
        {"step": 1, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": "", "val_accuracy": ""},
        {"step": 2, "train_loss": 0.5, "train_accuracy": 0.9, "val_loss": 2.0, "val_accuracy": 0.1},
    ]
    out = plot_run_curves(rows, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_plot_run_curves_names_missing_columns(tmp_path):
    metrics = write_metrics(tmp_path / "metrics.csv", columns=COLUMNS[:3])
    with pytest.raises(ValueError, match="val_loss"):
        plot_run_curves(metrics, tmp_path / "curves.png")
