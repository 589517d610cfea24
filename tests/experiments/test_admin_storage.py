"""The admin shows what runs store on disk: a storage column on runs, and per-user totals on users."""

from __future__ import annotations

import pytest

from experiments.models import Experiment
from training.config import TrainingConfig

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def stored_run(owner, *, name: str, weights: int, checkpoint: int = 0) -> Experiment:
    return Experiment.objects.create(owner=owner, name=name, status=Experiment.Status.SUCCEEDED,
                                     config=TrainingConfig.from_dict({"epochs": 2}).to_dict(),
                                     weights_bytes=weights, checkpoint_bytes=checkpoint)


def test_the_runs_changelist_shows_and_sorts_by_each_run_s_stored_bytes(staff_client, user):
    stored_run(user, name="big", weights=150 * 2**20, checkpoint=300 * 2**20)
    stored_run(user, name="small", weights=40 * 2**10)
    page = staff_client.get("/admin/experiments/experiment/").content.decode()
    assert "450.0 MiB" in page and "40.0 KiB" in page
    largest_first = staff_client.get("/admin/experiments/experiment/?o=-13").content.decode()  # 13th: storage
    assert largest_first.index(">big<") < largest_first.index(">small<")  # newest first otherwise


def test_a_run_s_page_shows_its_recorded_sizes(staff_client, user):
    run = stored_run(user, name="sized", weights=1234567, checkpoint=89)
    page = staff_client.get(f"/admin/experiments/experiment/{run.pk}/change/").content.decode()
    assert "1234567" in page and "Size of the stored final weights." in page


def test_the_user_list_shows_each_user_s_storage_against_the_limit(staff_client, user, other_user, settings):
    settings.TUNER_MAX_STORAGE_BYTES_PER_USER = 2 * 2**30
    stored_run(user, name="a", weights=512 * 2**20, checkpoint=512 * 2**20)
    stored_run(user, name="b", weights=0)
    stored_run(other_user, name="c", weights=3 * 2**10)
    response = staff_client.get("/admin/auth/user/?o=7")  # the 7th column, storage: smallest first
    assert response.status_code == 200
    page = response.content.decode()
    assert "1.0 GiB of 2.0 GiB (50 %)" in page and "3.0 KiB of 2.0 GiB (0 %)" in page
    assert page.index(">bob<") < page.index(">alice<")  # not the default order (by username)
    assert f"?owner__id__exact={user.pk}" in page

    settings.TUNER_MAX_STORAGE_BYTES_PER_USER = 0
    assert "1.0 GiB" in staff_client.get("/admin/auth/user/").content.decode()
