"""Server-rendered shells; the pages fill themselves from the REST API and websockets."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from experiments import selectors


@login_required
def tuner(request):
    return render(request, "frontend/tuner.html", {"page": "tuner"})


@login_required
def history(request):
    return render(request, "frontend/history.html", {"page": "history"})


@login_required
def run_detail(request, experiment_id: int):
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    if experiment is None:
        raise Http404("No such run")
    return render(request, "frontend/run_detail.html", {"page": "run", "experiment": experiment})


@login_required
def sweeps(request):
    return render(request, "frontend/sweeps.html", {"page": "sweeps"})


@login_required
def sweep_detail(request, sweep_id: int):
    sweep = selectors.sweep_get(user=request.user, sweep_id=sweep_id)
    if sweep is None:
        raise Http404("No such sweep")
    return render(request, "frontend/sweep_detail.html", {"page": "sweeps", "sweep": sweep})
