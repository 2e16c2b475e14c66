"""Launching runs: what a job learns from the Hydra launcher that started it (`job`: its
sweep, its share of the cores), a sweep's jobs and values (`sweep`), and where a multirun
study stands (`progress`: one line as each run starts and ends, the review page rewritten
as it goes)."""
