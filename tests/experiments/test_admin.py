"""The staff admin: lists, filters, the run page with its inlines, and the two actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from experiments import storage
from experiments.models import EpochMetric, Experiment, Recommendation
from training.config import TrainingConfig

Status = Experiment.Status
CHANGELIST = "/admin/experiments/experiment/"


def make_run(owner, *, name: str, status: str = Status.QUEUED, **config) -> Experiment:
    """A row as the services would leave it, without enqueuing anything."""
    values = {"hidden_layers": [32], "epochs": 3, "train_size": 1000, **config}
    run = Experiment.objects.create(owner=owner, name=name, status=status,
                                    config=TrainingConfig.from_dict(values).to_dict())
    if status != Status.QUEUED:
        now = timezone.now()
        Experiment.objects.filter(pk=run.pk).update(
            started_at=now - timedelta(seconds=95), heartbeat_at=now,
            finished_at=None if status == Status.RUNNING else now)
        run.refresh_from_db()
    return run


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def finished_run(user):
    run = make_run(user, name="finished-sgd", status=Status.SUCCEEDED, optimizer="sgd", learning_rate=0.05)
    Experiment.objects.filter(pk=run.pk).update(
        epochs_done=2, best_val_accuracy=0.81, best_epoch=2, test_accuracy=0.8, test_loss=0.55,
        per_class_accuracy=[0.8] * 10, confusion_matrix=[[10 if i == j else 1 for j in range(10)] for i in range(10)])
    for epoch in (1, 2):
        EpochMetric.objects.create(
            experiment=run, epoch=epoch, train_loss=1.0 / epoch, train_accuracy=0.7 + epoch / 100,
            val_loss=0.9 / epoch, val_accuracy=0.79 + epoch / 100, learning_rate=0.05, seconds=0.25,
            samples_per_second=3600.0, gradient_norm=1.5, dead_unit_fraction=0.0)
    Recommendation.objects.create(
        experiment=run, kind="raise_learning_rate", priority=Recommendation.Priority.HIGH, priority_rank=1,
        title="Try a larger learning rate", rationale="The loss fell slowly <b>every</b> epoch.",
        changes={"learning_rate": 0.1})
    run.refresh_from_db()
    return run


@pytest.fixture
def queued_run(user):
    return make_run(user, name="queued-adam", optimizer="adam")


def test_changelist_lists_runs_with_their_hyperparameters(staff_client, finished_run, queued_run):
    response = staff_client.get(CHANGELIST)
    assert response.status_code == 200
    page = response.content.decode()
    assert "finished-sgd" in page and "queued-adam" in page
    assert "81.00 %" in page  # best validation accuracy
    assert "1 min 35 s" in page  # duration
    assert "0.05" in page  # learning rate column


def test_changelist_uses_a_constant_number_of_queries(staff_client, user, django_assert_max_num_queries):
    for i in range(3):
        make_run(user, name=f"run-{i}")
    with django_assert_max_num_queries(20) as few:
        staff_client.get(CHANGELIST)
    for i in range(3, 30):
        make_run(user, name=f"run-{i}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert staff_client.get(CHANGELIST).status_code == 200


@pytest.mark.parametrize(("query", "shown", "hidden"), [
    ({"status__exact": "succeeded"}, "finished-sgd", "queued-adam"),
    ({"status__exact": "queued"}, "queued-adam", "finished-sgd"),
    ({"optimizer": "sgd"}, "finished-sgd", "queued-adam"),
    ({"optimizer": "adam"}, "queued-adam", "finished-sgd"),
])
def test_changelist_filters(staff_client, finished_run, queued_run, query, shown, hidden):
    response = staff_client.get(CHANGELIST, query)
    assert response.status_code == 200
    page = response.content.decode()
    assert shown in page
    assert hidden not in page


def test_changelist_filter_by_owner(staff_client, finished_run, other_user):
    make_run(other_user, name="bobs-run")
    page = staff_client.get(CHANGELIST, {"owner__id__exact": other_user.pk}).content.decode()
    assert "bobs-run" in page and "finished-sgd" not in page


def test_changelist_can_sort_by_a_config_field(staff_client, finished_run, queued_run):
    response = staff_client.get(CHANGELIST, {"o": "6"})  # the optimizer column
    assert response.status_code == 200
    page = response.content.decode()
    assert page.index("queued-adam") < page.index("finished-sgd")


@pytest.mark.parametrize("term_of", [
    lambda run: "finished",
    lambda run: "alice",  # the owner's username
    lambda run: str(run.pk),
    lambda run: f"#{run.pk}",
])
def test_search_by_name_owner_or_id(staff_client, finished_run, other_user, term_of):
    make_run(other_user, name="unrelated")
    page = staff_client.get(CHANGELIST, {"q": term_of(finished_run)}).content.decode()
    assert "finished-sgd" in page
    assert "unrelated" not in page


def test_change_page_shows_config_results_and_read_only_inlines(staff_client, finished_run):
    response = staff_client.get(reverse("admin:experiments_experiment_change", args=[finished_run.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    # The configuration as a table, non-default values in bold.
    assert '<table class="tuner-config">' in page
    assert "<code>optimizer</code></td><td><strong>sgd</strong></td>" in page
    assert "<code>activation</code></td><td>relu</td>" in page
    # Results and the confusion matrix with class names.
    assert "Ankle boot" in page
    # Both inlines, read-only: the recommendation's text is escaped, no add/delete controls.
    assert "Try a larger learning rate" in page
    assert "&lt;b&gt;every&lt;/b&gt;" in page
    assert 'name="metrics-0-train_loss"' not in page
    assert 'name="metrics-0-DELETE"' not in page
    inlines = {f.formset.prefix: f for f in response.context["inline_admin_formsets"]}
    assert set(inlines) == {"metrics", "recommendations"}
    for inline in inlines.values():
        assert not (inline.has_add_permission or inline.has_change_permission or inline.has_delete_permission)
    assert inlines["metrics"].formset.total_form_count() == 2
    # Results are not form fields.
    assert 'name="best_val_accuracy"' not in page
    assert 'name="config"' not in page
    assert 'name="name"' in page  # the one editable field


def test_config_table_escapes_values(staff_client, user):
    run = make_run(user, name="odd")
    Experiment.objects.filter(pk=run.pk).update(config={**run.config, "<script>": "<img src=x>"})
    page = staff_client.get(reverse("admin:experiments_experiment_change", args=[run.pk])).content.decode()
    assert "<img src=x>" not in page and "<script>" not in page
    assert "&lt;img src=x&gt;" in page


def test_cancel_action_cancels_queued_runs_and_reports_finished_ones_as_skipped(
        staff_client, finished_run, queued_run):
    response = staff_client.post(CHANGELIST, {
        "action": "cancel_runs", "_selected_action": [finished_run.pk, queued_run.pk]}, follow=True)
    assert response.status_code == 200
    queued_run.refresh_from_db()
    finished_run.refresh_from_db()
    assert queued_run.status == Status.CANCELLED
    assert finished_run.status == Status.SUCCEEDED
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert f"Cancelled 1 run(s): #{queued_run.pk}." in texts
    skipped = next(t for t in texts if t.startswith("Skipped"))
    assert f"#{finished_run.pk}" in skipped and "already succeeded" in skipped


def test_cancel_action_asks_a_running_run_to_stop(staff_client, user):
    running = make_run(user, name="running", status=Status.RUNNING)
    response = staff_client.post(CHANGELIST, {"action": "cancel_runs", "_selected_action": [running.pk]},
                                 follow=True)
    running.refresh_from_db()
    assert running.cancel_requested and running.status == Status.RUNNING
    assert any("Cancel requested" in str(m) for m in get_messages(response.wsgi_request))


def test_requeue_action_creates_a_new_run_with_its_parent(staff_client, finished_run, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(CHANGELIST, {
            "action": "requeue_runs", "_selected_action": [finished_run.pk]}, follow=True)
    assert len(callbacks) == 1  # enqueued once the transaction commits (not executed here)
    child = Experiment.objects.get(parent=finished_run)
    assert child.status == Status.QUEUED
    assert child.owner == finished_run.owner
    assert child.config == finished_run.config
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert f"Queued 1 new run(s): #{child.pk} (from #{finished_run.pk})." in texts


def test_requeue_action_reports_runs_over_quota(staff_client, finished_run, settings):
    settings.TUNER_MAX_ACTIVE_RUNS_PER_USER = 0
    response = staff_client.post(CHANGELIST, {
        "action": "requeue_runs", "_selected_action": [finished_run.pk]}, follow=True)
    assert not Experiment.objects.filter(parent=finished_run).exists()
    assert any(str(m).startswith("Skipped 1 run(s)") for m in get_messages(response.wsgi_request))


def test_runs_cannot_be_added_and_running_ones_not_deleted(staff_client, user):
    running = make_run(user, name="running", status=Status.RUNNING)
    assert staff_client.get(reverse("admin:experiments_experiment_add")).status_code == 403
    assert staff_client.get(reverse("admin:experiments_experiment_delete", args=[running.pk])).status_code == 403


def test_deleting_a_run_goes_through_the_service(staff_client, finished_run):
    weights = f"weights/experiment-{finished_run.pk}.npz"
    storage.save_bytes(weights, b"x")
    Experiment.objects.filter(pk=finished_run.pk).update(weights_path=weights)
    response = staff_client.post(reverse("admin:experiments_experiment_delete", args=[finished_run.pk]),
                                 {"post": "yes"})
    assert response.status_code == 302
    assert not Experiment.objects.filter(pk=finished_run.pk).exists()
    assert storage.read_bytes(weights) is None


def test_epoch_metric_admin_lists_and_filters_by_run(staff_client, finished_run, user):
    other = make_run(user, name="other", status=Status.SUCCEEDED)
    EpochMetric.objects.create(experiment=other, epoch=7, train_loss=0.3, train_accuracy=0.9, val_loss=0.3,
                               val_accuracy=0.9, learning_rate=0.001, seconds=0.5, samples_per_second=1.0,
                               gradient_norm=1.0, dead_unit_fraction=0.0)
    url = reverse("admin:experiments_epochmetric_changelist")
    response = staff_client.get(url)
    assert response.status_code == 200
    assert "epoch" in response.content.decode()
    filtered = staff_client.get(url, {"experiment": finished_run.pk})
    assert filtered.status_code == 200
    assert filtered.context["cl"].result_count == 2
    metric = EpochMetric.objects.filter(experiment=finished_run).first()
    detail = staff_client.get(reverse("admin:experiments_epochmetric_change", args=[metric.pk]))
    assert detail.status_code == 200  # view-only
    assert staff_client.get(reverse("admin:experiments_epochmetric_add")).status_code == 403


def test_recommendation_admin_lists_and_filters(staff_client, finished_run):
    url = reverse("admin:experiments_recommendation_changelist")
    response = staff_client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Try a larger learning rate" in page and "raise_learning_rate" in page
    assert staff_client.get(url, {"priority__exact": "low"}).context["cl"].result_count == 0
    assert staff_client.get(url, {"priority__exact": "high"}).context["cl"].result_count == 1
    rec = Recommendation.objects.get()
    assert staff_client.get(reverse("admin:experiments_recommendation_change", args=[rec.pk])).status_code == 200


@pytest.mark.parametrize("url", [
    CHANGELIST, "/admin/experiments/epochmetric/", "/admin/experiments/recommendation/",
])
def test_non_staff_users_are_sent_to_the_admin_login(client, user, url):
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_admin_client_fixture_sees_the_changelist(admin_client, queued_run):
    assert admin_client.get(CHANGELIST).status_code == 200
