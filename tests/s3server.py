"""An S3-compatible server of the tests' own: moto's standalone server (`moto_server`, a real HTTP
S3 endpoint in its own process), and the STORAGES entry that points the artifact storage at it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ACCESS_KEY = "tuner-test"
SECRET_KEY = "tuner-test-secret"
REGION = "us-east-1"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class MotoServer:
    """`moto_server -H host -p port` in a new session (its own process group), with a log file.
    `prefix` runs it under another command (e.g. `ip netns exec NAME`)."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, prefix: list[str] | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.prefix = prefix or []
        self.log = Path(tempfile.mkstemp(prefix="tuner-moto-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30) -> MotoServer:
        binary = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([*self.prefix, binary, "-H", self.host, "-p", str(self.port)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):
                    return self
            except (urllib.error.URLError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start:\n{self.log.read_text(errors='replace')[-3000:]}") from None
                time.sleep(0.05)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"tuner-test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.log.unlink(missing_ok=True)


def s3_storages_entry(endpoint: str, bucket: str) -> dict:
    """STORAGES["artifacts"] as tuner_site/settings.py builds it for TUNER_ARTIFACT_STORAGE=s3."""
    from boto3.s3.transfer import TransferConfig

    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": bucket, "endpoint_url": endpoint, "region_name": REGION, "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY, "location": "", "file_overwrite": True, "default_acl": None,
        "transfer_config": TransferConfig(multipart_threshold=5 * 1024**3, use_threads=False)}}


def s3_environment(endpoint: str, bucket: str) -> dict[str, str]:
    """The environment of a process (a worker) using the bucket: the storage settings only."""
    return {"TUNER_ARTIFACT_STORAGE": "s3", "AWS_S3_ENDPOINT_URL": endpoint, "AWS_STORAGE_BUCKET_NAME": bucket,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_S3_REGION_NAME": REGION}


def stored_checkpoint_epoch(experiment_id: int) -> int:
    """The epoch of a run's checkpoint in the artifact storage (0: none)."""
    import io
    import json

    import numpy as np

    from experiments import storage

    data = storage.read_bytes(storage.artifact_name("checkpoints", experiment_id))
    if data is None:
        return 0
    with np.load(io.BytesIO(data)) as stored:
        return json.loads(str(stored["meta"]))["epoch"]
