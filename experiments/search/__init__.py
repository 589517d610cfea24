"""Hyperparameter search for sweeps, as plain data in and plain data out.

Pure: no Django, no ORM, no models. experiments.services locks the sweep row and reads its
trials through experiments.selectors as records.TrialRecord; these modules decide:

- space: parse and validate a search space and a sweep request (SweepSpecError, validate_sweep);
- records: the sweep's settings (SweepSpec) and its trials (TrialRecord);
- study: the Optuna study rebuilt from the trials, its samplers, and the Asker that proposes trials;
- pruning: whether a running trial should stop after an epoch;
- analysis: best trial, Pareto front, importance and range warnings.

Import the module you need, e.g. `from experiments.search import space`.
"""
