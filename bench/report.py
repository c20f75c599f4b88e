"""Printing benchmark figures, each beside its target when it has one, and what missed."""

from __future__ import annotations

import operator
import sys
from dataclasses import dataclass, field

_COMPARE = {">=": operator.ge, "<=": operator.le}


@dataclass
class Report:
    missed: list[str] = field(default_factory=list)
    checked: int = 0  # figures compared with a target
    values: dict[str, float] = field(default_factory=dict)  # every figure printed, by name

    def value(self, starting: str) -> dict[str, float]:
        """The figures printed so far whose names start with `starting`."""
        return {name: v for name, v in self.values.items() if name.startswith(starting)}

    def heading(self, text: str) -> None:
        self._print(f"\n== {text}")

    def line(self, text: str) -> None:
        self._print(text)

    def figure(self, name: str, value: float, unit: str, target: tuple[str, float] | None = None) -> None:
        self.values[name] = value
        shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
        verdict = ""
        if target is not None:
            sign, bound = target
            met = _COMPARE[sign](value, bound)
            self.checked += 1
            verdict = f"   target {sign} {_bound(bound)}{unit}: {'met' if met else 'MISSED'}"
            if not met:
                self.missed.append(f"{name}: {shown}{unit} (target {sign} {_bound(bound)}{unit})")
        self._print(f"{name:62} {shown:>10} {unit}{verdict}")

    def unmeasured(self, name: str, why: str) -> None:
        """A figure with a target that the run could not produce: a miss, with the reason."""
        self.checked += 1
        self.missed.append(f"{name}: {why}")

    def summary(self) -> None:
        if self.missed:
            self._print("\n".join(f"missed: {m}" for m in self.missed))
        else:
            self._print("every target met" if self.checked else "no figure with a target was measured")

    def _print(self, text: str) -> None:
        print(text, flush=True)
        sys.stdout.flush()


def _bound(bound: float) -> str:
    return f"{bound:,.0f}" if bound >= 10 or bound == int(bound) else f"{bound:,.2f}".rstrip("0")
