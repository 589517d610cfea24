"""Server-rendered shells; the pages fill themselves from the REST API and websockets.

Each page names its stylesheets and scripts (static paths) in PAGES; base.html links them after
the shared ones (theme.css; format.js, run_state.js, common.js, rain.js). frontend/DOM_CONTRACT.md
lists the modules.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from experiments import selectors


@dataclass(frozen=True)
class Page:
    template: str
    nav: str  # the header link marked as the current page
    styles: tuple[str, ...] = ()
    scripts: tuple[str, ...] = ()


def js(*names: str) -> tuple[str, ...]:
    return tuple(f"frontend/js/{name}.js" for name in names)


def css(*names: str) -> tuple[str, ...]:
    return tuple(f"frontend/css/{name}.css" for name in names)


CHART_JS = ("vendor/chartjs/chart.umd.min.js",)
RUN_VIEWS = CHART_JS + js("charts", "recommendations")
CONFIG_FORM = js("config_fields", "config_form")

PAGES = {
    "tuner": Page("frontend/tuner.html", "tuner", css("config_form", "tuner"),
                  RUN_VIEWS + CONFIG_FORM + js("live_run", "tuner")),
    "history": Page("frontend/history.html", "history", css("pages"), CHART_JS + js("history")),
    "run_detail": Page("frontend/run_detail.html", "run", css("pages"), RUN_VIEWS + js("draw_pad", "try_model", "run_detail")),
    "sweeps": Page("frontend/sweeps.html", "sweeps", css("pages", "config_form", "sweeps"),
                   CONFIG_FORM + js("sweeps")),
    "sweep_detail": Page("frontend/sweep_detail.html", "sweeps", css("pages", "sweeps"), CHART_JS + js("sweep_detail")),
}


def _render(request, name: str, **context):
    page = PAGES[name]
    return render(request, page.template,
                  {"page": page.nav, "styles": page.styles, "scripts": page.scripts, **context})


def _found(obj, what: str):
    if obj is None:
        raise Http404(f"No such {what}")
    return obj


@login_required
def tuner(request):
    return _render(request, "tuner")


@login_required
def history(request):
    return _render(request, "history")


@login_required
def run_detail(request, experiment_id: int):
    experiment = _found(selectors.experiment_get(user=request.user, experiment_id=experiment_id), "run")
    return _render(request, "run_detail", experiment=experiment)


@login_required
def sweeps(request):
    return _render(request, "sweeps")


@login_required
def sweep_detail(request, sweep_id: int):
    sweep = _found(selectors.sweep_get(user=request.user, sweep_id=sweep_id), "sweep")
    return _render(request, "sweep_detail", sweep=sweep)
