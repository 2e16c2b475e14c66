"""What a review page decides: the recommended variant by a rule stated up front, the
control it is measured against, and the comparisons behind both (statistics.md, 3-4)."""

from __future__ import annotations

from dataclasses import dataclass, field

from catdog import CatdogError
from catdog.report import stats
from catdog.report.summary import Scores

RULE = (
    "Highest mean validation accuracy. When a runner-up's validation difference to the leader is "
    "inside its 95% interval, the tie is broken by the lower mean validation loss, then by the "
    "cheaper run (wall time). The test split is never used to choose."
)
REFERENCE_CONTROLS = {
    "transfer": "the reference's Model 4 (frozen MobileNetV2)",
    "cnn": "the reference's Model 1 (the plain CNN)",
}


@dataclass
class Decision:
    recommended: dict  # its variant row
    reason: str
    tied: list[str]  # the variants whose validation accuracy ties the leader's
    validation: list[stats.Comparison]  # leader minus each other variant, on validation
    control: dict | None = None
    control_note: str = ""
    comparisons: list[stats.Comparison] = field(default_factory=list)  # the declared family, Holm-corrected
    exploratory: list[stats.Comparison] = field(default_factory=list)  # all pairs, on request

    @property
    def versus_control(self) -> stats.Comparison | None:
        if self.control is None:
            return None
        names = (self.recommended["variant"], self.control["variant"])
        return next((c for c in self.comparisons if (c.a, c.b) == names), None)


def validation_difference(a: dict, b: dict) -> stats.Comparison:
    return stats.compare_rates(
        a["val_accuracies"], b["val_accuracies"], a["n_val"], a["seeds"], b["seeds"], (a["variant"], b["variant"])
    )


def recommend(rows: list[dict]) -> tuple[dict, str, list[str], list[stats.Comparison]]:
    """RULE applied to the variant rows: (chosen row, why, tied variants, the leader's
    validation differences)."""
    leader = max(rows, key=lambda r: r["val_accuracy_mean"])
    others = [r for r in rows if r is not leader]
    differences = [validation_difference(leader, r) for r in others]
    tied = [leader] + [r for r, d in zip(others, differences) if 0 in d.interval]
    if len(tied) == 1:
        runner = min(differences, key=lambda d: d.difference) if differences else None
        reason = "highest mean validation accuracy" + (
            f", {100 * runner.difference:+.1f} pts over {runner.b} (95% interval "
            f"[{100 * runner.interval.low:+.1f}, {100 * runner.interval.high:+.1f}])"
            if runner
            else ""
        )
        return leader, reason, [leader["variant"]], differences
    loss = lambda r: (float("inf") if r["val_loss_mean"] is None else r["val_loss_mean"], r["wall_minutes"])
    chosen = min(tied, key=loss)
    others = [r["variant"] for r in tied if r is not chosen]
    same_loss = [r["variant"] for r in tied if r is not chosen and loss(r)[0] == loss(chosen)[0]]
    reason = f"ties on validation accuracy with {', '.join(others)}; the lowest validation loss"
    if chosen["val_loss_mean"] is not None:
        reason += f" ({chosen['val_loss_mean']:.4f})"
    if same_loss:
        reason += f", shared with {', '.join(same_loss)}, and the cheaper run"
    return chosen, reason, [r["variant"] for r in tied], differences


def choose_control(rows: list[dict], recommended: dict, name: str | None = None) -> tuple[dict | None, str]:
    """NAME's row if given; else a search's reference retrains (its configured values);
    else the reference's Model 4 or Model 1 when present and not the recommendation."""
    by_name = {r["variant"]: r for r in rows}
    if name is not None:
        if name not in by_name:
            raise CatdogError(f"--control {name!r} is not a variant of this study; choose from {', '.join(by_name)}")
        return by_name[name], "chosen with --control"
    for row in rows:
        if "(reference of search" in row["variant"] and row is not recommended:
            return row, "the search's configured values, retrained"
    for variant, note in REFERENCE_CONTROLS.items():
        if variant in by_name and by_name[variant] is not recommended:
            return by_name[variant], note
    return None, ""


def comparisons(scores: dict[str, Scores], recommended: str, control: str | None) -> list[stats.Comparison]:
    """The declared family: the recommendation against every other variant, and every
    other variant against the control; Holm-corrected over all of them."""
    pairs = [(recommended, v) for v in scores if v != recommended]
    if control is not None:
        pairs += [(v, control) for v in scores if v not in (recommended, control)]
    found = [
        stats.compare(scores[a].correct, scores[b].correct, scores[a].seeds, scores[b].seeds, (a, b))
        for a, b in pairs
        if a in scores and b in scores
    ]
    return stats.corrected(found) if found else []


def decide(rows: list[dict], scores: dict[str, Scores], control: str | None = None, all_pairs: bool = False):
    chosen, reason, tied, validation = recommend(rows)
    control_row, note = choose_control(rows, chosen, control)
    control_name = control_row["variant"] if control_row else None
    family = comparisons(scores, chosen["variant"], control_name)
    matrices = {g: s.correct for g, s in scores.items()}
    exploratory = stats.all_pairs(matrices, {g: s.seeds for g, s in scores.items()}) if all_pairs else []
    return Decision(chosen, reason, tied, validation, control_row, note, family, exploratory)


def line(experiment: str, decision: Decision, flagged: bool) -> str:
    """The decision in one line, for the terminal."""
    row = decision.recommended
    ci = row["test_ci"]
    text = (
        f"Decision for {experiment}: recommend {row['variant']} ({decision.reason}); "
        f"validation {', '.join(map(str, row['val_correct']))} of {row['n_val']} right per seed"
        + ("" if row["val_loss_mean"] is None else f", loss {row['val_loss_mean']:.3f}")
        + f"; test {100 * row['test_accuracy_mean']:.1f}% [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"
        f" over {row['runs']} run(s) x {row['n_test']} images"
    )
    versus = decision.versus_control
    if versus is not None:
        text += (
            f"; vs {versus.b} {100 * versus.difference:+.1f} pts [{100 * versus.interval.low:+.1f}, "
            f"{100 * versus.interval.high:+.1f}], confidence {versus.confidence:.1%}"
        )
    text += f"; best run {row['best_run_id']}"
    return text + ("; FLAG: a choice in this experiment used the test split" if flagged else "")
