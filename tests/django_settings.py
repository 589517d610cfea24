"""Settings for the test suite: the real settings, pointed at an isolated Redis DB/queue.

Tests use the machine's real Redis and database (DATABASE_URL; PostgreSQL in CI),
but their own Redis database number, queue name and channel prefix, so a `make run`
server on the same machine never picks up test work.
"""

import os
import tempfile

_run_id = os.getpid()
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("TUNER_QUEUE", f"tuner-test-{_run_id}")
os.environ.setdefault("TUNER_CHANNEL_PREFIX", f"tuner-test-{_run_id}")
os.environ.setdefault("TUNER_VAR_DIR", tempfile.mkdtemp(prefix="tuner-test-var-"))
os.environ.setdefault("TUNER_CANCEL_POLL_SECONDS", "0.05")

from tuner_site.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not the in-memory default: the worker thread and the test share it, and
    # only a file database has WAL and busy-waiting instead of "table is locked".
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(os.environ["TUNER_VAR_DIR"], "test.sqlite3")}  # noqa: F405
else:
    # A per-run test database, so parallel runs on one PostgreSQL server never collide.
    DATABASES["default"]["TEST"] = {"NAME": f"test_tuner_{_run_id}"}  # noqa: F405

STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405 - whitenoise warns on a missing root
WHITENOISE_USE_FINDERS = True  # serve app/npm static files without collectstatic
