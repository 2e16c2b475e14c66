"""The review page's sentences and number formats, written once for both the HTML page and
its Markdown twin: each sentence is built whole here, so neither template breaks one
across lines, and every count agrees with its noun."""

from __future__ import annotations

from catdog import decision_rule, power, stats


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """ "1 run", "3 runs"; NOUNS for irregular plurals."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


def pct(value, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def pts(value) -> str:
    return "-" if value is None else f"{100 * value:+.1f} pts"


def interval(ci, points: bool = False, digits: int = 1, scale: float = 100) -> str:
    return "-" if ci is None else ci.text(points, digits, scale)


def pval(p) -> str:
    if p is None or p != p:
        return "-"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def duration(minutes: float) -> str:
    return f"{60 * minutes:.0f} s" if minutes < 1 else f"{minutes:.1f} min"


def cell(value) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def seeds(values) -> str:
    """ "seed 0", "seeds 0, 1, 2"."""
    values = list(values)
    return ("seed " if len(values) == 1 else "seeds ") + ", ".join(map(str, values))


def detectable(c) -> str:
    """The smallest difference C's seeds and images detect at 80% power, in points ("-": unknown)."""
    found = power.detectable(c) if c else None  # c: a Comparison, or none found (Jinja's Undefined)
    return "-" if found is None else f"{100 * found:.1f} pts"


FILTERS = {
    "detectable": detectable,
    "pct": pct,
    "pts": pts,
    "interval": interval,
    "pval": pval,
    "cell": cell,
    "duration": duration,
    "plural": plural,
    "seeds": seeds,
}


def plan(c: stats.Comparison, supply: int) -> str:
    """What it takes to detect each planned difference (1 and 2 points) between C's two
    variants at 80% power: seeds each on these test images, and seeds with every held-out
    image (SUPPLY: test and validation, usable only once validation no longer chooses)."""
    parts = []
    for difference in power.PLANNED_DIFFERENCES:
        p = power.plan(c, difference, supply)
        head = f"{100 * difference:.0f} pt{'s' if difference != 0.01 else ''}: "
        if p.joint_seeds is None and p.seeds is None:
            parts.append(head + p.note)
            continue
        if p.seeds is not None:
            here = "within reach now" if p.seeds <= min(c.seeds) else f"{p.seeds} seeds each on the {c.n:,} test images"
        else:
            here = f"not with {power.MAX_SEEDS} seeds on the {c.n:,} test images"
        if supply > c.n and p.joint_seeds is not None and p.joint_seeds != p.seeds:
            here += (
                f"; {p.joint_seeds} seeds each with all {supply:,} held-out images, once validation no longer chooses"
            )
        parts.append(head + here)
    return "; ".join(parts)


def sentences(content: dict) -> dict[str, str]:
    """The page's sentences, each one line of plain text (no markup)."""
    setup, rows, d = content["setup"], content["rows"], content["decision"]
    out = {
        "intro": (
            f"{plural(setup['runs'], 'finished run')}, {seeds(setup['seeds'])}; generated {setup['generated']} "
            "by catdog report from the tracking store."
        ),
        "rule": _rule(content["rule"]),
        "ledger": _ledger(content["ledger"], content["book"]),
        "reuse": _reuse(content["ledger"], content["book"]),
    }
    if max(r.runs for r in rows) == 1:
        lent = [r for r in rows if r.seed_variance is not None]
        out["one_run"] = (
            "One run per variant: every figure here is a single checkpoint's. "
            + (
                "Where an earlier study of a variant measured how much its seeds differ, that seed variance "
                f"is borrowed and named ({', '.join(f'{r.variant}: {r.seed_variance.source}' for r in lent)}); "
                if lent
                else ""
            )
            + "elsewhere how much another seed would move a figure is unknown, and so is what more seeds would buy."
        )
    if d.versus_control is not None:
        v = d.versus_control
        out["control"] = (
            f"Against the control ({d.control.variant}, {d.control_note}): {pts(v.difference)} "
            f"{v.interval.text(True)} on test; one-sided p {pval(v.p_greater)} (the chance of a difference at "
            f"least this favourable if {d.recommended.variant} were no better); two-sided p {pval(v.p_value)} "
            f"(Holm {pval(v.p_holm)} over {plural(v.family, 'comparison')})."
        )
    if d.untold:
        out["untold"] = _untold(d)
    return out


def _rule(rule: dict) -> str:
    head = f"Rule version {rule['version']}, in force since {rule['since']}"
    if rule["declared_before"]:
        text = f"{head}; declared before these runs started (each run recorded the version in force when it started)."
    else:
        earlier = ", ".join(f"{plural(n, 'run')} under version {v}" for v, n in sorted(rule["earlier"].items()))
        when = "after all of these runs started" if rule["under"] == 0 else "after some of these runs started"
        text = (
            f"{head}: declared {when} ({rule['under']} of {plural(rule['runs'], 'run')} started under it; "
            f"{earlier}), so it may have changed after they were seen."
        )
    known = rule["known_before"]
    if known:
        listed = "; ".join(
            f"{k['experiment']}: {k['variant']} {seeds(k['seeds'])} (rule {', '.join(k['versions'])})" for k in known
        )
        text += (
            f" It is newer than {plural(sum(k['runs'] for k in known), 'run')} of these variants, seeds and "
            f"data already in the store ({listed}): their outcomes were known before the rule was declared, so "
            "runs repeating them add no evidence on accuracy."
        )
    if rule["ledger_before"]:
        listed = "; ".join(f"{e['first']}, {plural(e['runs'], 'run')}" for e in rule["ledger_before"])
        text += (
            f" The test-split ledger lists earlier runs under this experiment's name in stores this page cannot "
            f"read ({listed}): where they repeated these variants and seeds, their outcomes were known before the "
            "rule was declared."
        )
    return text


def _ledger(counts: dict, book: dict | None) -> str:
    text = (
        f"In this store, {plural(counts['runs'], 'run')} of {plural(counts['variants'], 'variant')} in this "
        f"experiment scored the test split, and {plural(counts['store_runs'], 'run')} in "
        f"{plural(counts['store_experiments'], 'experiment')} scored the same test images."
    )
    if book is not None:
        text += (
            f" The project's ledger, kept with the published pages, lists {plural(book['experiments'], 'experiment')} "
            f"(by name and store; a name can recur) with {plural(book['runs'], 'run')} that scored this test split "
            f"since {book['since']}, in stores that are gone as well as this one."
        )
    if counts["chosen_on_test"]:
        return text + " A choice in this experiment was made on test."
    return text + " No choice here used test: the recommendation is by validation, and test is reported as a check."


def _reuse(counts: dict, book: dict | None) -> str:
    """The test split's reuse, said beside every test figure: its intervals are each one
    look's, and the split has had many."""
    if book is not None:
        looks = f"{plural(book['runs'], 'run')} in {plural(book['experiments'], 'experiment')} since {book['since']}"
        choice = f"{book['chose_on_test']} say a choice used it, {book['unrecorded_choice']} do not say"
    else:
        looks = f"{plural(counts['store_runs'], 'run')} in {plural(counts['store_experiments'], 'experiment')}"
        choice = "the ledger was not read"
    return (
        f"Test split reused: scored by {looks} ({choice}). Each test interval is one look's 95% interval, "
        "not adjusted for that reuse: read test figures as a check, never as a choice."
    )


def _untold(d) -> str:
    """Cost chose among variants the rule could not tell apart: which of them are shown
    equivalent (two one-sided tests at the rule's margin) and which merely not distinguished,
    what validation could have detected, and why the chosen one."""
    chosen = d.recommended
    found = [power.detectable(c) for c in d.against_tied]
    found = [m for m in found if m is not None]
    text = f"Cost decided among variants no interval of validation accuracy or loss tells apart: {', '.join(d.untold)}."
    if d.equivalent:
        margin = 100 * decision_rule.EQUIVALENCE_MARGIN
        text += (
            f" Equivalent to {chosen.variant} within +-{margin:g} pt (two one-sided tests on validation): "
            f"{', '.join(d.equivalent)}."
        )
    if d.undistinguished:
        text += f" Not distinguished, and not shown equivalent: {', '.join(d.undistinguished)}."
    if found:
        text += (
            f" The smallest validation difference these seeds and images detect at 80% power is "
            f"{100 * min(found):.1f} to {100 * max(found):.1f} points."
        )
    return text + f" Chose {chosen.variant}: {d.because} ({duration(chosen.cost_minutes)} a run, cache build included)."
