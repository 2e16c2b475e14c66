"""The rule a review page decides by, and its versions. Every run records the version in
force when it started (the tag `decision_rule`), so a page can say whether its rule was
declared before the runs it judges or changed after they were seen."""

from __future__ import annotations

TAG = "decision_rule"
# The incumbent a study is judged against is the variant `experiment=<INCUMBENT_PRESET>`
# trained when its runs were made, recorded on each run (INCUMBENT_TAG): a page built later,
# after the preset changed, decides as the page built that day.
INCUMBENT_TAG = "incumbent"
INCUMBENT_PRESET = "best"
VERSION = "4"
# Declared with the rule. Equivalence: two one-sided tests at 1 point of validation accuracy,
# the smallest difference the project has treated as worth a change (a 2-5 point gap separated
# the reference's models; 1 point is 8 validation images). Cost: a variant is dearer only
# beyond 20% of the cheaper one's run and at least 5 s: below 5 s a run's cost is process
# start-up and logging noise (imports alone take about 7 s), and below a fifth a saving does
# not change how many runs a team gets through in a day.
EQUIVALENCE_MARGIN = 0.01
COST_MARGIN_SHARE = 0.2
COST_MARGIN_SECONDS = 5.0
TEXT = (
    "Highest mean validation accuracy. A variant whose validation difference to the leader has a 95% "
    "interval that includes 0 is not distinguished from it (tied); a tied variant is equivalent to the "
    "recommendation within 1 point only where two one-sided tests at that margin pass (the 90% interval of their "
    "difference inside +-1 point). Among tied variants the lowest "
    "mean validation loss wins only where the 95% interval of its paired loss difference to each other tied "
    "variant excludes 0. Those it cannot be told apart from on loss go to cost: the whole cost of a run as a "
    "user pays it (the feature cache's build included; a variant whose build no run measured has no whole cost "
    "and is neither the cheapest nor dearer); a variant is dearer only where the 95% interval of its "
    "cost difference to the cheapest lies above the material margin (20% of the cheapest's cost and at least "
    "5 s); among those not dearer the incumbent (the variant experiment=best trained when the runs were made, "
    "recorded on each run) stays if it is one, else the lowest mean validation loss wins. The test split is "
    "never used to choose."
)
# version: (date it took effect, what it said)
HISTORY = {
    "1": (
        "2026-12-01",
        "highest mean validation accuracy; ties inside the validation interval broken by the lower mean "
        "validation loss as a bare point estimate, then the cheaper run",
    ),
    "2": (
        "2026-12-06",
        "the loss tie-break needs an interval that excludes 0, else the cheaper run by bare mean wall time",
    ),
    "3": ("2026-12-06", "cost needs an interval too; among equally cheap variants the incumbent stays"),
    VERSION: (
        "2026-12-07",
        "equivalence only by two one-sided tests at 1 point; cost is a run's whole cost (the cache build "
        "included; unmeasured, it decides nothing) and decides only beyond a material margin (20% and 5 s); the "
        "incumbent is the one recorded on the runs, not today's preset",
    ),
}
