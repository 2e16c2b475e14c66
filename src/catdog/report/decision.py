"""What a review page decides: the recommended variant by the declared rule
(`catdog.decision_rule`), the control it is measured against, and the comparisons behind
both. Every step of the rule is itself a comparison with an interval: a tie on accuracy
(equivalence only where two one-sided tests at the rule's margin pass), a loss that is lower
only where its interval says so, and cost where neither can tell, beyond a material margin."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from catdog import CatdogError, decision_rule, stats
from catdog.report.prose import duration, plural
from catdog.report.summary import Scores, VariantRow

REFERENCE_CONTROLS = {
    "transfer": "the reference's Model 4 (frozen MobileNetV2)",
    "cnn": "the reference's Model 1 (the plain CNN)",
}


def _complete(scores: Scores | None, row: VariantRow) -> bool:
    return scores is not None and len(scores.records) == row.runs


def validation_difference(a: VariantRow, b: VariantRow, val: dict[str, Scores]) -> stats.Comparison:
    """A minus B in validation accuracy: paired image by image where both logged their
    validation results, else from per-seed accuracies (binomial image term)."""
    names, priors = (a.variant, b.variant), (a.prior, b.prior)
    sa, sb = val.get(a.variant), val.get(b.variant)
    if _complete(sa, a) and _complete(sb, b):
        return stats.compare(sa.correct, sb.correct, a.seeds, b.seeds, names, priors)
    return stats.compare_rates(a.val_accuracies, b.val_accuracies, a.n_val, a.seeds, b.seeds, names, priors)


def loss_difference(a: VariantRow, b: VariantRow, val: dict[str, Scores]) -> stats.Comparison | None:
    """A minus B in validation loss: paired image by image (log loss is additive over
    images), else over per-seed losses when both ran two seeds or more; None when there is
    nothing to build an interval from."""
    sa, sb = val.get(a.variant), val.get(b.variant)
    names = (a.variant, b.variant)
    if _complete(sa, a) and _complete(sb, b) and sa.losses is not None and sb.losses is not None:
        return stats.compare(sa.losses, sb.losses, a.seeds, b.seeds, names)
    la, lb = [v for v in a.val_losses if v is not None], [v for v in b.val_losses if v is not None]
    if min(len(la), len(lb)) < 2:
        return None
    return stats.compare(np.array(la)[:, None], np.array(lb)[:, None], a.seeds, b.seeds, names)


@dataclass(frozen=True)
class Choice:
    """What the decision rule chose from the validation results, and why."""

    recommended: VariantRow
    reason: str
    tied: list[str]  # the variants whose validation accuracy the leader cannot be told from
    untold: list[str]  # tied on accuracy and on loss, so cost chose (empty otherwise)
    validation: list[stats.Comparison]  # leader minus each other variant, on validation accuracy
    losses: list[stats.Comparison]  # lowest-loss tied variant minus each other tied one, on validation loss
    because: str = ""  # among untold variants: why this one (cost, the incumbent, loss)
    # The recommendation minus each other tied variant on validation accuracy: equivalent
    # within the rule's margin only where `equivalent(margin)` (two one-sided tests) passes.
    against_tied: list[stats.Comparison] = field(default_factory=list)
    costs: list[stats.Comparison] = field(default_factory=list)  # each untold variant minus the chosen, seconds

    @property
    def equivalent(self) -> list[str]:
        """The tied variants equivalent to the recommendation within the rule's margin."""
        return [c.b for c in self.against_tied if c.equivalent(decision_rule.EQUIVALENCE_MARGIN)]

    @property
    def undistinguished(self) -> list[str]:
        """The tied variants merely not distinguished from the recommendation."""
        return [c.b for c in self.against_tied if not c.equivalent(decision_rule.EQUIVALENCE_MARGIN)]

    def words(self, variant: str) -> str:
        """How the page, the run's tag and the terminal name a tied VARIANT's relation to
        the recommendation: the same words everywhere."""
        margin = 100 * decision_rule.EQUIVALENCE_MARGIN
        return f"equivalent within +-{margin:g} pt" if variant in self.equivalent else "not distinguished"


@dataclass(frozen=True)
class Decision(Choice):
    """The review page's decision: the choice, measured on test against a control."""

    control: VariantRow | None = None
    control_note: str = ""
    comparisons: list[stats.Comparison] = field(default_factory=list)  # the declared family, Holm-corrected
    exploratory: list[stats.Comparison] = field(default_factory=list)  # all pairs, on request

    @property
    def versus_control(self) -> stats.Comparison | None:
        if self.control is None:
            return None
        return self._test(self.control.variant)

    def _test(self, other: str) -> stats.Comparison | None:
        names = (self.recommended.variant, other)
        return next((c for c in self.comparisons if (c.a, c.b) == names), None)


def recommend(rows: list[VariantRow], val: dict[str, Scores] | None = None, incumbent: str | None = None) -> Choice:
    """`decision_rule.TEXT` applied to the variant rows, their validation scores and, when
    it is one of them, the INCUMBENT (experiment=best when the runs were made)."""
    val = val or {}
    leader = max(rows, key=lambda r: r.val_accuracy_mean)
    others = [r for r in rows if r is not leader]
    differences = [validation_difference(leader, r, val) for r in others]
    tied = [leader] + [r for r, d in zip(others, differences) if 0 in d.interval]
    names = [r.variant for r in tied]
    if len(tied) == 1:
        runner = min(differences, key=lambda d: d.difference) if differences else None
        reason = "highest mean validation accuracy" + (
            f", {100 * runner.difference:+.1f} pts over {runner.b} (95% interval {runner.interval.text(True)})"
            if runner
            else ""
        )
        return Choice(leader, reason, names, [], differences, [])
    lowest = min(tied, key=lambda r: (r.val_loss_mean is None, r.val_loss_mean or 0.0))
    losses = [loss_difference(lowest, r, val) for r in tied if r is not lowest]
    resolved = [c for c in losses if c is not None and 0 not in c.interval]
    tied_on_loss = [lowest] + [r for r in tied if r is not lowest and r.variant not in {c.b for c in resolved}]
    found = [c for c in losses if c is not None]
    if len(tied_on_loss) == 1:
        closest = max(resolved, key=lambda c: c.difference)
        reason = (
            f"ties on validation accuracy with {_names(v for v in names if v != lowest.variant)}; the lower "
            f"validation loss, resolved from each ({lowest.val_loss_mean:.4f}; closest: {closest.b} by "
            f"{closest.difference:+.4f}, 95% interval {closest.interval.text(True, 4, 1)})"
        )
        return _with_ties(Choice(lowest, reason, names, [], differences, found), tied, val)
    return _with_ties(_by_cost(tied_on_loss, names, differences, found, incumbent), tied, val)


def _with_ties(choice: Choice, tied: list[VariantRow], val: dict) -> Choice:
    """CHOICE with the recommendation against each other tied variant on validation
    accuracy, and the reason saying which are equivalent within the margin."""
    against = [validation_difference(choice.recommended, r, val) for r in tied if r is not choice.recommended]
    choice = replace(choice, against_tied=against)
    margin = 100 * decision_rule.EQUIVALENCE_MARGIN
    parts = []
    if choice.equivalent:
        parts.append(f"equivalent within +-{margin:g} pt (90% interval inside the margin): {_names(choice.equivalent)}")
    if choice.undistinguished:
        parts.append(f"not distinguished, not shown equivalent: {_names(choice.undistinguished)}")
    return replace(choice, reason=f"{choice.reason}; " + "; ".join(parts)) if parts else choice


def cost_difference(a: VariantRow, b: VariantRow) -> stats.Comparison | None:
    """A minus B in whole cost per run (seconds, the cache build included), over their runs
    (Welch); None with one run each."""
    if a.runs + b.runs < 3:
        return None
    per_run = lambda r: np.array(r.cost_seconds)[:, None]
    return stats.compare(per_run(a), per_run(b), None, None, (a.variant, b.variant))


def cost_margin(cheaper: VariantRow) -> float:
    """The cost difference that matters, in seconds: the rule's share of the cheaper run's
    cost, and never less than its floor."""
    return max(decision_rule.COST_MARGIN_SHARE * 60 * cheaper.cost_minutes, decision_rule.COST_MARGIN_SECONDS)


def _by_cost(tied: list[VariantRow], names, differences, losses, incumbent: str | None) -> Choice:
    """The rule's last step: the cheapest by whole cost; a variant is dearer only where its
    cost difference's interval lies above the material margin; among the others the
    incumbent stays, else the lowest validation loss wins."""
    # A variant whose cache every run found built has no whole cost to compare: never dearer.
    known = [r for r in tied if r.cost_known] or tied
    cheapest = min(known, key=lambda r: r.cost_minutes)
    margin = cost_margin(cheapest)
    costs = {r.variant: cost_difference(r, cheapest) for r in known if r is not cheapest}
    dearer = [r for r in known if costs.get(r.variant) is not None and costs[r.variant].interval.low > margin]
    unknown = [r.variant for r in tied if not r.cost_known]
    as_cheap = [r for r in tied if r not in dearer]
    untold = [r.variant for r in tied]
    if incumbent in {r.variant for r in as_cheap}:
        chosen = next(r for r in as_cheap if r.variant == incumbent)
        why = "the incumbent stays" if len(as_cheap) > 1 else "the cheapest, and the incumbent"
    else:
        chosen = min(as_cheap, key=lambda r: (r.val_loss_mean is None, r.val_loss_mean or 0.0))
        why = "the lower validation loss of the not materially dearer" if len(as_cheap) > 1 else "the cheapest run"
    against = [c for c in (cost_difference(r, chosen) for r in tied if r is not chosen) if c is not None]
    cost = ", ".join(_cost_text(r, against) for r in sorted(tied, key=lambda r: r.cost_minutes))
    reason = (
        f"tied on validation accuracy and loss: {_names(untold)}; whole cost per run (cache build included) {cost}; "
        f"material margin {margin:.0f} s"
        + (f"; whole cost unknown (the cache built before these runs): {_names(unknown)}" if unknown else "")
        + (f"; dearer beyond it: {_names(r.variant for r in dearer)}" if dearer else "; none dearer beyond it")
        + f"; chose {chosen.variant}: {why}"
    )
    return Choice(chosen, reason, names, untold, differences, losses, why, costs=against)


def _cost_text(row: VariantRow, against: list[stats.Comparison]) -> str:
    if not row.cost_known:
        return f"{row.variant} {duration(row.cost_minutes)} without its cache build"
    c = next((c for c in against if c.a == row.variant), None)
    versus = f" ({c.difference:+.1f} s {c.interval.text(True, 1, 1)} vs {c.b})" if c else ""
    return f"{row.variant} {duration(row.cost_minutes)}{versus}"


def _names(names) -> str:
    return ", ".join(names)


def choose_control(
    rows: list[VariantRow], recommended: VariantRow, name: str | None = None, incumbent: str | None = None
) -> tuple[VariantRow | None, str]:
    """NAME's row if given; else the INCUMBENT (experiment=best when the study's runs were
    made) when it is in the study; else a search's reference retrains (its configured
    values); else the reference's Model 4 or Model 1 when present. Never the recommendation
    itself."""
    by_name = {r.variant: r for r in rows}
    if name is not None:
        if name not in by_name:
            raise CatdogError(f"--control {name!r} is not a variant of this study; choose from {', '.join(by_name)}")
        return by_name[name], "chosen with --control"
    if incumbent in by_name and by_name[incumbent] is not recommended:
        preset = decision_rule.INCUMBENT_PRESET
        return by_name[incumbent], f"the incumbent: experiment={preset} when the study's runs were made"
    for row in rows:
        if "(reference of search" in row.variant and row is not recommended:
            return row, "the search's configured values, retrained"
    for variant, note in REFERENCE_CONTROLS.items():
        if variant in by_name and by_name[variant] is not recommended:
            return by_name[variant], note
    return None, ""


def comparisons(
    scores: dict[str, Scores], rows: list[VariantRow], recommended: str, control: str | None
) -> list[stats.Comparison]:
    """The declared family on test: the recommendation against every other variant, and
    every other variant against the control; Holm-corrected over all of them."""
    by_name = {r.variant: r for r in rows}
    pairs = [(recommended, v) for v in scores if v != recommended]
    if control is not None:
        pairs += [(v, control) for v in scores if v not in (recommended, control)]
    found = [
        stats.compare(
            scores[a].correct,
            scores[b].correct,
            scores[a].seeds,
            scores[b].seeds,
            (a, b),
            (by_name[a].prior, by_name[b].prior),
        )  # fmt: skip
        for a, b in pairs
        if a in scores and b in scores
    ]
    return stats.corrected(found) if found else []


def decide(
    rows: list[VariantRow],
    scores: dict[str, Scores],
    val: dict[str, Scores] | None = None,
    control: str | None = None,
    all_pairs: bool = False,
    incumbent: str | None = None,
) -> Decision:
    """The review page's decision from the variant ROWS, each variant's per-image test
    SCORES (the comparisons) and per-image validation results VAL (the rule; None: per-seed
    rates), measured against CONTROL (None: `choose_control` decides); ALL_PAIRS adds every
    pair of variants, Holm-corrected, as exploratory. INCUMBENT: the variant
    `experiment=best` trained when the study's runs were made (`Study.incumbent`; None: not
    recorded)."""
    choice = recommend(rows, val, incumbent)
    control_row, note = choose_control(rows, choice.recommended, control, incumbent)
    control_name = control_row.variant if control_row else None
    family = comparisons(scores, rows, choice.recommended.variant, control_name)
    exploratory = []
    if all_pairs:
        priors = {r.variant: r.prior for r in rows if r.prior}
        exploratory = stats.all_pairs(
            {g: s.correct for g, s in scores.items()}, {g: s.seeds for g, s in scores.items()}, priors
        )
    return Decision(**vars(choice), control=control_row, control_note=note, comparisons=family, exploratory=exploratory)


def line(experiment: str, decision: Decision, flagged: bool) -> str:
    """The decision in one line, for the terminal."""
    row = decision.recommended
    text = (
        f"Decision for {experiment}: recommend {row.variant} ({decision.reason}); "
        f"validation {', '.join(map(str, row.val_correct))} of {row.n_val} right per seed"
        + ("" if row.val_loss_mean is None else f", loss {row.val_loss_mean:.3f}")
        + f"; test {100 * row.test_accuracy_mean:.1f}% {row.test_ci.text()}"
        f" over {plural(row.runs, 'run')} x {row.n_test} images"
    )
    versus = decision.versus_control
    if versus is not None:
        text += (
            f"; vs {versus.b} {100 * versus.difference:+.1f} pts {versus.interval.text(True)}, "
            f"one-sided p {versus.p_greater:.3g} (if it were no better)"
        )
    text += f"; best run {row.best_run_id}"
    return text + ("; FLAG: a choice in this experiment used the test split" if flagged else "")
