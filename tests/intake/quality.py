"""Precision / recall of the candidate extractor against the hand-labelled articles in ``data/``.

Matching rules
--------------
* A candidate matches an expected item when the candidate's text contains the item's ``text_contains``.
* Recall (per kind) = expected items matched by some candidate / expected items.
* Precision = candidates that match an expected item / all candidates.  Sentences listed under an
  article's ``optional`` key are borderline (a careful checker could go either way): a candidate on one of
  them is not counted at all in the lenient figure, and counts as a false positive in the strict figure.
* Claimant accuracy, over matched items: a null label needs a null claimant; otherwise every word of the
  label (case-folded, possessive "'s" and articles dropped) must appear in the extracted claimant.
* Figure accuracy, over matched items that list figures: each labelled figure must be found among the
  candidate's figures with the same low, high and qualifier.

Run ``python -m tests.intake.quality`` for the tuning-set table, ``--held-out`` to add the held-out and
overall rows, and ``--errors`` to list the misses of the tuning articles (held-out articles are only ever
summarised).
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from app.intake.extract import Candidate, extract_candidates

DATA_DIR = Path(__file__).parent / "data"
KINDS = ("figure", "attributed", "hedge", "date")


def load_articles() -> list[dict[str, Any]]:
    articles = []
    for path in sorted(DATA_DIR.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["name"] = path.stem
        articles.append(doc)
    return articles


def _claimant_words(s: str) -> set[str]:
    s = s.lower().replace("\u2019", "'")
    s = re.sub(r"'s\b|'", " ", s)
    return {w for w in re.findall(r"[\w.-]+", s) if w not in {"the", "a", "an", "of", "for", "its"}}


def claimant_matches(expected: str | None, got: str | None) -> bool:
    if expected is None or got is None:
        return expected is None and got is None
    return _claimant_words(expected) <= _claimant_words(got)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-6)


def figures_match(expected: list[dict[str, Any]], got: Candidate) -> bool:
    for e in expected:
        if not any(
            _close(e["low"], f.low) and _close(e["high"], f.high) and e["qualifier"] == f.qualifier for f in got.figures
        ):
            return False
    return True


@dataclass
class Tally:
    expected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    found: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    candidates: int = 0
    true_positive: int = 0
    optional_hits: int = 0
    claimant_checked: int = 0
    claimant_right: int = 0
    figures_checked: int = 0
    figures_right: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for k in KINDS:
            self.expected[k] += other.expected[k]
            self.found[k] += other.found[k]
        self.candidates += other.candidates
        self.true_positive += other.true_positive
        self.optional_hits += other.optional_hits
        self.claimant_checked += other.claimant_checked
        self.claimant_right += other.claimant_right
        self.figures_checked += other.figures_checked
        self.figures_right += other.figures_right
        self.errors.extend(other.errors)

    def recall(self, kind: str | None = None) -> float:
        kinds = KINDS if kind is None else (kind,)
        exp = sum(self.expected[k] for k in kinds)
        return sum(self.found[k] for k in kinds) / exp if exp else 1.0

    @property
    def precision(self) -> float:
        judged = self.candidates - self.optional_hits
        return self.true_positive / judged if judged else 1.0

    @property
    def strict_precision(self) -> float:
        return self.true_positive / self.candidates if self.candidates else 1.0

    @property
    def claimant_accuracy(self) -> float:
        return self.claimant_right / self.claimant_checked if self.claimant_checked else 1.0

    @property
    def figure_accuracy(self) -> float:
        return self.figures_right / self.figures_checked if self.figures_checked else 1.0


def evaluate_article(article: dict[str, Any]) -> Tally:
    published = datetime.fromisoformat(article["published_at"].replace("Z", "+00:00"))
    result = extract_candidates(article["text"], published_at=published)
    cands = result.candidates
    t = Tally(candidates=len(cands))
    name = article["name"]
    matched_candidates: set[int] = set()
    for item in article["expected"]:
        kind = item["kind"]
        t.expected[kind] += 1
        hits = [c for c in cands if item["text_contains"] in c.text]
        if not hits:
            t.errors.append(f"{name}: MISSED {kind}: {item['text_contains']!r}")
            continue
        t.found[kind] += 1
        cand = hits[0]
        matched_candidates.add(cand.index)
        t.claimant_checked += 1
        if claimant_matches(item["claimant"], cand.claimant):
            t.claimant_right += 1
        else:
            t.errors.append(
                f"{name}: CLAIMANT {item['text_contains']!r}: expected {item['claimant']!r}, got {cand.claimant!r}"
            )
        if item.get("figures"):
            t.figures_checked += 1
            if figures_match(item["figures"], cand):
                t.figures_right += 1
            else:
                got = [(f.low, f.high, f.qualifier, f.text) for f in cand.figures]
                t.errors.append(f"{name}: FIGURES {item['text_contains']!r}: expected {item['figures']}, got {got}")
    t.true_positive = len(matched_candidates)
    for c in cands:
        if c.index in matched_candidates:
            continue
        if any(o in c.text for o in article.get("optional", [])):
            t.optional_hits += 1
        else:
            t.errors.append(f"{name}: FALSE POSITIVE ({c.score:.2f} {c.reasons}): {c.text!r}")
    return t


def evaluate(articles: list[dict[str, Any]]) -> tuple[Tally, Tally, Tally]:
    """(tuning set, held-out set, all)."""
    tune, held, every = Tally(), Tally(), Tally()
    for article in articles:
        t = evaluate_article(article)
        (held if article.get("held_out") else tune).add(t)
        every.add(t)
    return tune, held, every


def table(rows: list[tuple[str, Tally]]) -> str:
    head = (
        f"{'set':<10} {'P':>5} {'P-strict':>8} {'R-all':>6} {'R-fig':>6} {'R-attr':>6} {'R-hedge':>7} "
        f"{'R-date':>6} {'claimant':>8} {'figures':>7} {'cands':>5}"
    )
    lines = [head, "-" * len(head)]
    for name, t in rows:
        lines.append(
            f"{name:<10} {t.precision:>5.2f} {t.strict_precision:>8.2f} {t.recall():>6.2f} {t.recall('figure'):>6.2f} "
            f"{t.recall('attributed'):>6.2f} {t.recall('hedge'):>7.2f} {t.recall('date'):>6.2f} "
            f"{t.claimant_accuracy:>8.2f} {t.figure_accuracy:>7.2f} {t.candidates:>5}"
        )
    counts = ", ".join(f"{name}: " + "/".join(f"{t.expected[k]} {k}" for k in KINDS) for name, t in rows)
    lines.append(f"expected items - {counts}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    tune, held, every = evaluate(load_articles())
    if "--held-out" in argv:
        print(table([("tuning", tune), ("held-out", held), ("all", every)]))
    else:
        print(table([("tuning", tune)]))
    if "--errors" in argv:
        print()
        print("\n".join(tune.errors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
