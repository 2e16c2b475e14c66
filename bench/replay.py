"""Search policies replayed thousands of times on the table of real fits (`make bench-replay`).

The table (`bench/fits.npz`, made by bench/table.py) holds every setting of a Latin
hypercube over `transfer`'s default search space fitted with every one of its seeds, each
fit's 0/1 results on the 800 validation images. A replay:
- splits the validation images at random into a selection half and a confirmation half;
- draws the settings in a random order, as a random oracle proposes them (after the last
  setting, a new order: a setting drawn twice is a new candidate near an earlier one), and
  a random order of the seeds, which policies that compare settings on common seeds share;
- runs a policy until it has spent its budget of fits, each fit scored on the selection
  half only, and takes its pick and the pick's search score;
- scores the pick's truth: its mean over the seeds the search did not run for that
  setting, on the confirmation half. Optimism = search score - truth counts the seed-level
  and the image-level winner's curse; regret = the best setting's truth (its mean over
  every seed on the confirmation half) - the pick's truth.
Each policy replays the same splits, setting orders and seed orders (common random
numbers), so their differences are paired replay by replay; the fresh seeds a plain trial or
a re-run draws come from the replay's one generator, so they depend on the policies replayed
before it in the same replay (a replay of fewer policies, `only`, draws other ones).
Intervals are 95%, over replays (the table itself is one sample of settings and seeds: see
docs/benchmarks.md for what that leaves out).

Policies: plain (one seed per setting, the best single fit), racing (today's
`search.racing`: the project's own `race.look`, 3 seeds, alpha 0.05 over 3 looks),
intensify (the project's own `tuning.intensify.Intensifier`, cap 3 and cap 5), top-2 re-run
(one-seed trials, then the best 2 settings on 2 fresh seeds each, picked on those), and
successive halving over seeds (1, 2, 4 seeds, halving the settings each rung). Each pick's
score is also corrected for selection (Tweedie's formula, `tuning.shrinkage`) with the seed
variance the store would have; its bias and how often its interval covers the truth (itself
a noisy measurement: fewer than 95% of the time even for an exact interval) are printed
beside the raw score's.
Usage: python bench/replay.py [--replays 2000] [--budgets 12,40,120] [--table bench/fits.npz] [--no-split]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catdog.tuning.intensify import Intensifier
from catdog.tuning.race import look, paired
from catdog.tuning.shrinkage import shrunk

Z = 1.959963984540054


@dataclass
class Table:
    correct: np.ndarray  # settings x seeds x images, 0/1
    settings: list[dict]
    made: dict

    @classmethod
    def load(cls, path: str) -> Table:
        with np.load(path) as f:
            done = f["done"]
            settings = [s for s, d in zip(json.loads(str(f["settings"])), done) if d]
            return cls(f["correct"][done].astype(np.float32), settings, json.loads(str(f["made"])))


class Replay:
    """One replay's split, orders and seeds, and what a policy may ask of it."""

    def __init__(self, table: Table, rng: np.random.Generator, split: bool = True):
        s, k, n = table.correct.shape
        images = rng.permutation(n)
        # Unsplit, as real searches run: choosing and scored on every image.
        self.sel, self.conf = (images[: n // 2], images[n // 2 :]) if split else (images, images)
        self.a = table.correct[:, :, self.sel]  # settings x seeds x selection images
        self.acc_a = self.a.mean(axis=2)
        self.acc_b = table.correct[:, :, self.conf].mean(axis=2)
        self.acc_all = table.correct.mean(axis=2)
        self.order = np.concatenate([rng.permutation(s) for _ in range(8)])
        self.seed_order = rng.permutation(k)  # common seeds: the j-th seed of every setting
        self.rng = rng
        self.seed_var = float(self.acc_a.var(axis=1, ddof=1).mean())  # what the store knows
        self.best_truth = float(self.acc_b.mean(axis=1).max())

    def fresh_seed(self, setting: int, used: dict[int, set]) -> int:
        """A seed this setting has not run in this replay, at random (plain trials)."""
        left = [i for i in range(self.acc_a.shape[1]) if i not in used.setdefault(setting, set())]
        return int(self.rng.choice(left))


@dataclass
class Outcome:
    setting: int
    score: float  # the pick's search score (selection half)
    used: set  # the pick's setting's seeds the search ran
    fits: int
    candidates: list[tuple[int, list[int]]]  # every candidate's setting and the seeds it ran, the pick first

    def truth(self, r: Replay) -> tuple[float, float]:
        """Mean over the seeds the search did not use: on the confirmation half, and on all
        validation images (what bench/search.py measured)."""
        unused = [i for i in range(r.acc_b.shape[1]) if i not in self.used]
        return float(r.acc_b[self.setting, unused].mean()), float(r.acc_all[self.setting, unused].mean())


def plain(r: Replay, budget: int) -> Outcome:
    used, cands = {}, []
    for c in range(budget):
        s = int(r.order[c])
        seed = r.fresh_seed(s, used)
        used[s].add(seed)
        cands.append((s, seed, float(r.acc_a[s, seed])))
    best = max(range(len(cands)), key=lambda i: cands[i][2])
    s, seed, score = cands.pop(best)
    return Outcome(s, score, used[s], budget, [(s, [seed])] + [(x[0], [x[1]]) for x in cands])


def top_k(r: Replay, budget: int, k: int = 2, reruns: int = 2) -> Outcome:
    used, cands = {}, []
    for c in range(budget - k * reruns):
        s = int(r.order[c])
        seed = r.fresh_seed(s, used)
        used[s].add(seed)
        cands.append((s, seed))
    finals = []
    for s, _ in sorted(cands, key=lambda x: -r.acc_a[x])[:k]:
        seeds = []
        for _ in range(reruns):
            seeds.append(r.fresh_seed(s, used))
            used[s].add(seeds[-1])
        finals.append((s, seeds))
    best = max(range(k), key=lambda i: r.acc_a[finals[i][0], finals[i][1]].mean())
    s, seeds = finals.pop(best)
    score = float(r.acc_a[s, seeds].mean())
    return Outcome(s, score, used[s], budget, [(s, seeds), *finals, *((t, [i]) for t, i in cands)])


def racing(r: Replay, budget: int, max_seeds: int = 3, alpha: float = 0.05, margin: float = 0.005) -> Outcome:
    """Race.run's rules, and its settled stop (Race.settled)."""
    level, fits, survivors, ran = alpha / max_seeds, 0, {}, {}
    for s in map(int, r.order):
        if fits >= budget or settled(survivors, margin):
            break
        rows, status = [], "survivor"
        for j in range(max_seeds):
            rows.append(r.a[s, r.seed_order[j]])
            fits += 1
            leader = max((m for t, m in survivors.items() if t != s), key=lambda m: m.mean(), default=None)
            if leader is not None and look(np.array(rows), leader, level).dropped:
                status = "dropped"
                break
            if j + 1 < max_seeds and fits >= budget:
                status = "stopped"
                break
        ran[s] = np.array(rows)
        if status == "survivor":
            survivors[s] = ran[s]
    s = max(survivors, key=lambda t: survivors[t].mean())
    seeds = [int(i) for i in r.seed_order[:max_seeds]]
    cands = [(s, seeds)] + [(t, seeds[: len(m)]) for t, m in ran.items() if t != s]
    return Outcome(s, float(survivors[s].mean()), set(seeds), fits, cands)


def settled(survivors: dict, margin: float) -> bool:
    """Every survivor but the leader resolved from it or equivalent to it (Race.settled)."""
    if len(survivors) < 2:
        return False
    leader = max(survivors.values(), key=lambda m: m.mean())
    for other in survivors.values():
        if other is not leader:
            c = paired(leader, other)
            if 0 in c.interval and not c.equivalent(margin):
                return False
    return True


def intensify(r: Replay, budget: int, cap: int = 3) -> Outcome:
    policy, cands, fits, c = Intensifier(cap), {}, 0, 0
    while fits < budget:
        step = policy.next()
        if step is None:
            key = str(c)
            cands[key] = int(r.order[c])
            c += 1
            step = (key, policy.add(key))
        key, j = step
        policy.finished(key, j, float(r.acc_a[cands[key], r.seed_order[j]]))
        fits += 1
    pick = policy.pick()
    ran = [(cands[x.key], [int(r.seed_order[j]) for j in x.scores]) for x in policy.settings.values() if x.scores]
    ran.sort(key=lambda x: x[0] != cands[pick.key])
    return Outcome(cands[pick.key], pick.mean, set(ran[0][1]), fits, ran)


def halving(r: Replay, budget: int, rungs: tuple[int, ...] = (1, 2, 4)) -> Outcome:
    def cost(n0: int) -> int:
        total, alive, have = 0, n0, 0
        for seeds in rungs:
            total += alive * (seeds - have)
            alive, have = max(1, math.ceil(alive / 2)), seeds
        return total

    n0 = max(n for n in range(1, budget + 1) if cost(n) <= budget or n == 1)
    alive = [int(s) for s in r.order[:n0]]
    have, fits, ran = 0, 0, {}
    for rung, seeds in enumerate(rungs):
        fits += len(alive) * (seeds - have)
        have = seeds
        means = {s: float(r.acc_a[s, r.seed_order[:seeds]].mean()) for s in alive}
        for s in alive:
            ran[s] = [int(i) for i in r.seed_order[:seeds]]
        if rung + 1 < len(rungs):
            alive = sorted(alive, key=lambda s: -means[s])[: max(1, math.ceil(len(alive) / 2))]
    s = max(alive, key=lambda t: means[t])
    return Outcome(s, means[s], set(ran[s]), fits, [(s, ran[s])] + [(t, v) for t, v in ran.items() if t != s])


POLICIES = {
    "plain": plain,
    "racing (3 seeds)": racing,
    "intensify (cap 3)": intensify,
    "intensify (cap 5)": lambda r, b: intensify(r, b, cap=5),
    "top-2 re-run (2 seeds)": top_k,
    "successive halving (1, 2, 4 seeds)": halving,
}


def replay_all(table: Table, replays: int, budgets: list[int], seed: int = 0, split: bool = True,
               only: list[str] | None = None) -> dict:  # fmt: skip
    """Per budget and policy (ONLY these, when given), per replay: optimism, regret, the
    expected score's bias and whether its interval covers the truth, optimism on the
    search's own images, settings tried and fits spent. SPLIT: choose on one half of the
    images and judge on the other."""
    policies = {k: v for k, v in POLICIES.items() if only is None or k in only}
    out = {b: {p: [] for p in policies} for b in budgets}
    for i in range(replays):
        for b in budgets:
            r = Replay(table, np.random.default_rng([seed, i]), split)
            for name, policy in policies.items():
                o = policy(r, b)
                truth, truth_same_images = o.truth(r)
                means = [float(r.acc_a[s, seeds].mean()) for s, seeds in o.candidates]
                own = r.a[o.setting, o.candidates[0][1]].mean(axis=0)  # the pick's per-image results
                estimate = shrunk(means, 0, r.seed_var / len(o.candidates[0][1]), own.var(ddof=1) / len(own))
                covered = estimate.interval.low <= truth <= estimate.interval.high
                out[b][name].append((o.score - truth, r.best_truth - truth, estimate.mean - truth, covered,
                                     float(r.acc_all[o.setting, sorted(o.used)].mean()) - truth_same_images,
                                     len(o.candidates), o.fits))  # fmt: skip
    return {b: {p: np.array(v) for p, v in d.items()} for b, d in out.items()}


def mean_ci(x: np.ndarray) -> tuple[float, float, float]:
    half = Z * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def ratio_ci(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, draws: int = 2000) -> tuple[float, float, float]:
    """mean(X) / mean(Y) and its 95% percentile interval, resampling replays (paired)."""
    idx = rng.integers(0, len(x), (draws, len(x)))
    ratios = x[idx].mean(axis=1) / y[idx].mean(axis=1)
    return float(x.mean() / y.mean()), *map(float, np.percentile(ratios, [2.5, 97.5]))


def pts(m: tuple[float, float, float], signed: bool = True) -> str:
    sign = "+" if signed else ""
    return f"{100 * m[0]:{sign}.2f} [{100 * m[1]:{sign}.2f}, {100 * m[2]:{sign}.2f}]"


def report(results: dict, replays: int) -> None:
    rng = np.random.default_rng(1)
    for budget, by_policy in results.items():
        base = by_policy["plain"]
        print(f"\n### {budget} fits, {replays} replays\n")
        print("| policy | settings | optimism, pts | x plain's | regret, pts | regret - plain's, pts | "
              "expected (Tweedie) bias, pts | its 95% interval covers the truth | "
              "optimism on the search's own images, pts |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for name, x in by_policy.items():
            ratio = ratio_ci(x[:, 0], base[:, 0], rng)
            regret_gap = mean_ci(x[:, 1] - base[:, 1])
            print(f"| {name} | {x[:, 5].mean():.1f} | {pts(mean_ci(x[:, 0]))} | {ratio[0]:.2f} [{ratio[1]:.2f}, "
                  f"{ratio[2]:.2f}] | {pts(mean_ci(x[:, 1]))} | {pts(regret_gap)} | {pts(mean_ci(x[:, 2]))} | "
                  f"{100 * x[:, 3].mean():.0f}% | {pts(mean_ci(x[:, 4]))} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replays", type=int, default=2000)
    parser.add_argument("--budgets", default="12,40,120")
    parser.add_argument("--table", default=str(Path(__file__).with_name("fits.npz")))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-split", action="store_true", help="choose and judge on all images, as real searches do")
    args = parser.parse_args()
    table = Table.load(args.table)
    s, k, n = table.correct.shape
    print(f"table: {s} settings x {k} seeds x {n} validation images ({table.made['date']}, {table.made['design']})")
    started = time.perf_counter()
    results = replay_all(table, args.replays, [int(b) for b in args.budgets.split(",")], args.seed, not args.no_split)
    report(results, args.replays)
    print(f"\nreplayed in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
