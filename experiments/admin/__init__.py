"""The staff view: every run, epoch, recommendation and sweep (browse, filter, inspect, cancel,
re-queue), and what each user's runs store on disk.

One module per model admin; importing them registers them:

- runs.py    runs (with their epochs and advice inline), epoch metrics, recommendations
- sweeps.py  sweeps, with their trials inline
- users.py   the user list, with each user's stored bytes against the storage limit
- common.py  formatting, read-only inlines and admins, the run filter
"""

from experiments.admin import runs, sweeps, users  # noqa: F401 - registering is importing
