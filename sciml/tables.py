"""Plain-text tables for the command line and the README.

>>> print(format_table([{"model": "fno", "rel_l2": 0.0123}]))
| model | rel_l2 |
|-------|--------|
| fno   | 0.0123 |
"""

from __future__ import annotations


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0.0:
            return "0"
        if abs(value) >= 1e4 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:.4g}"
    return str(value)


def format_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A Markdown table of ``rows`` (dicts), with ``columns`` in order (default: all keys)."""
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(columns), rule, *(line(r) for r in cells)])


def evaluation_row(metrics: dict, label: str) -> dict:
    """One row of the results table from the metrics :func:`sciml.evaluation.evaluate` returns."""
    return {
        "model": label,
        "resolution": "x".join(str(s) for s in metrics["resolution"]),
        "rel_l2": metrics["relative_l2"]["mean"],
        "rel_h1": metrics["relative_h1"]["mean"],
        "parameters": metrics["n_parameters"],
        "train_s": metrics.get("train_seconds"),
        "infer_ms_per_sample": 1e3 * metrics["inference_seconds_per_sample"],
    }
