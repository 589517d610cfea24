"""Server-rendered shells; the pages fill themselves from the REST API and websockets.

Each page names its stylesheets and scripts (static paths) in PAGES; base.html links them after
the shared ones (theme.css; format.js, run_state.js, common.js, rain.js). The URLs the scripts use
are SCRIPT_URLS, on <body data-urls> (frontend/DOM_CONTRACT.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from experiments import selectors
from tuner_site.auth import lockout_message, lockout_seconds


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
                  RUN_VIEWS + CONFIG_FORM + js("live_run", "autotune", "tuner")),
    "history": Page("frontend/history.html", "history", css("pages"), CHART_JS + js("history")),
    "run_detail": Page("frontend/run_detail.html", "run", css("pages"),
                       RUN_VIEWS + js("draw_pad", "try_model", "run_detail")),
    "sweeps": Page("frontend/sweeps.html", "sweeps", css("pages", "config_form", "sweeps"),
                   CONFIG_FORM + js("sweeps")),
    "sweep_detail": Page("frontend/sweep_detail.html", "sweeps", css("pages", "sweeps"),
                         CHART_JS + js("sweep_state", "autotune", "sweep_detail")),
    "tokens": Page("frontend/tokens.html", "tokens", css("pages"), js("token_list", "tokens")),
    "lab": Page("frontend/lab.html", "lab", css("pages", "lab"), js("lab_status", "lab")),
}

# URL names the scripts reach, without and with an id (reversed with 0: Tuner.urls.to(name, id) puts
# the id in its place).
SCRIPT_URLS = (
    "frontend:tuner", "api:config-schema", "api:experiment-list", "api:sweep-list", "api:autotune", "api:token-list",
    "api:lab-status",
    *((name, 0) for name in (
        "frontend:run-detail", "frontend:sweep-detail", "api:experiment-detail", "api:experiment-cancel",
        "api:experiment-metrics", "api:experiment-weights", "api:experiment-predict",
        "api:experiment-misclassified", "api:experiment-filters", "api:recommendation-apply",
        "api:sweep-detail", "api:sweep-cancel", "api:sweep-extend", "api:token-detail")),
)


def script_urls() -> str:
    table = {}
    for entry in SCRIPT_URLS:
        name, args = (entry, ()) if isinstance(entry, str) else (entry[0], entry[1:])
        table[name] = reverse(name, args=args)
    return json.dumps(table)


def _render(request, name: str, **context):
    page = PAGES[name]
    return render(request, page.template, {"page": page.nav, "styles": page.styles, "scripts": page.scripts,
                                           "urls": script_urls(), **context})


def _page(name: str):
    @login_required
    def view(request):
        return _render(request, name)
    view.__name__ = name
    return view


def _object_page(name: str, context_name: str, what: str, lookup):
    """A page about one of the user's objects (`lookup(user, id)`); 404 when it is not theirs."""
    @login_required
    def view(request, **kwargs):
        (object_id,) = kwargs.values()
        obj = lookup(request.user, object_id)
        if obj is None:
            raise Http404(f"No such {what}")
        return _render(request, name, **{context_name: obj})
    view.__name__ = name
    return view


tuner = _page("tuner")
history = _page("history")
sweeps = _page("sweeps")
run_detail = _object_page("run_detail", "experiment", "run",
                          lambda user, pk: selectors.experiment_get(user=user, experiment_id=pk))
sweep_detail = _object_page("sweep_detail", "sweep", "sweep",
                            lambda user, pk: selectors.sweep_get(user=user, sweep_id=pk))


@login_required
def lab(request):
    """The lab status (staff only; its API answers 403 to anyone else as well)."""
    if not request.user.is_staff:
        raise PermissionDenied("The lab status is for staff.")
    return _render(request, "lab")


@login_required
def tokens(request):
    return _render(request, "tokens", token_ttl_hours=settings.TUNER_TOKEN_TTL_HOURS)


def login_locked_out(request, original_response=None, credentials=None):
    """django-axes' answer (settings.AXES_LOCKOUT_CALLABLE) to a login on /login/ or /admin/login/
    by a locked-out username + address: the login page again, saying so, with 429 and Retry-After.
    (POST /api/auth/token/ answers for itself with JSON; this covers any other JSON caller.)"""
    message = lockout_message()
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        response = JsonResponse({"detail": message}, status=429)
    else:
        username = str(request.POST.get("username", ""))[:150]
        form = AuthenticationForm(request, initial={"username": username})
        response = render(request, "frontend/login.html",
                          {"form": form, "locked_out": message, "next": request.POST.get("next", "")}, status=429)
    response["Retry-After"] = str(lockout_seconds())
    return response
