"""
Figures: one measured value, the baseline it is compared with, their
ratio and the target it should meet, printed one line each.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import List, Optional


@dataclass
class Figure:
    """
    One result.  C{ratio} is C{value / baseline}; C{target} (if any) is
    met when the ratio is at least C{minRatio} and at most C{maxRatio}.
    """

    benchmark: str
    name: str
    value: float
    unit: str
    baselineName: str
    baseline: float
    minRatio: Optional[float] = None
    maxRatio: Optional[float] = None
    note: str = ""
    # Targets on the value itself, where the brief sets one.
    minValue: Optional[float] = None
    maxValue: Optional[float] = None

    @property
    def ratio(self) -> float:
        if self.baseline == 0:
            return float("inf") if self.value else 1.0
        return self.value / self.baseline

    @property
    def target(self) -> str:
        parts = []
        for label, low, high in (("ratio", self.minRatio, self.maxRatio),
                                 ("value", self.minValue, self.maxValue)):
            if low is not None:
                parts.append(f"{label} >= {low:g}")
            if high is not None:
                parts.append(f"{label} <= {high:g}")
        return ", ".join(parts)

    @property
    def met(self) -> Optional[bool]:
        if not self.target:
            return None
        ratio, value, eps = self.ratio, self.value, 1e-9
        return ((self.minRatio is None or ratio >= self.minRatio - eps)
                and (self.maxRatio is None or ratio <= self.maxRatio + eps)
                and (self.minValue is None or value >= self.minValue - eps)
                and (self.maxValue is None or value <= self.maxValue + eps))

    def line(self) -> str:
        verdict = ""
        if self.met is not None:
            verdict = f" | target {self.target}: " + (
                "met" if self.met else "MISSED")
        note = f"  ({self.note})" if self.note else ""
        return (f"  {self.name}: {formatNumber(self.value)} {self.unit}"
                f" | baseline {self.baselineName}: "
                f"{formatNumber(self.baseline)} {self.unit}"
                f" | ratio {self.ratio:.2f}{verdict}{note}")

    def toJSON(self) -> dict:
        data = asdict(self)
        data.update(ratio=self.ratio, target=self.target, met=self.met)
        return data


def formatNumber(value: float) -> str:
    if value != value:  # NaN
        return "nan"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01 or value == 0:
        return f"{value:.3f}".rstrip("0").rstrip(".") if value else "0"
    return f"{value:.2e}"


@dataclass
class Results:
    """Everything a benchmark run measured: figures, extra facts, series."""

    figures: List[Figure] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print(figure.line(), flush=True)
        return figure

    def fact(self, benchmark: str, key: str, value) -> None:
        self.facts.setdefault(benchmark, {})[key] = value

    def dump(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"figures": [x.toJSON() for x in self.figures],
                       "facts": self.facts}, f, indent=1)

    @classmethod
    def load(cls, path: str) -> "Results":
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        figures = []
        for item in data["figures"]:
            for key in ("ratio", "target", "met"):
                item.pop(key, None)
            figures.append(Figure(**item))
        return cls(figures, data["facts"])

    def merge(self, other: "Results") -> None:
        self.figures.extend(other.figures)
        for key, value in other.facts.items():
            self.facts.setdefault(key, {}).update(value)


def rstTable(figures: List[Figure]) -> str:
    """The figures as a reStructuredText list-table."""
    rows = ["   * - Figure\n     - Value\n     - Baseline\n     - Ratio\n"
            "     - Target"]
    for f in figures:
        verdict = "" if f.met is None else (
            f"{f.target}: {'met' if f.met else 'missed'}")
        rows.append(
            f"   * - {f.name}\n"
            f"     - {formatNumber(f.value)} {f.unit}\n"
            f"     - {f.baselineName}: {formatNumber(f.baseline)} {f.unit}\n"
            f"     - {f.ratio:.2f}\n"
            f"     - {verdict}")
    return (".. list-table::\n   :header-rows: 1\n   :widths: 40 14 30 8 18\n\n"
            + "\n".join(rows) + "\n")
