from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

import experiments.api.inspect_views as inspect_views
from experiments.api import fix_views, lab_views, sweep_views, views

app_name = "api"

# /api/experiments/<id>/<action>/ is named "experiment-<action>", /api/sweeps/<id>/<action>/ "sweep-<action>".
EXPERIMENT_ACTIONS = {
    "cancel": views.ExperimentCancelView,
    "rerun": views.ExperimentRerunView,
    "metrics": views.ExperimentMetricsView,
    "weights": views.ExperimentWeightsView,
    "predict": inspect_views.ExperimentPredictView,
    "misclassified": inspect_views.ExperimentMisclassifiedView,
    "filters": inspect_views.ExperimentFiltersView,
    "find-fix": fix_views.ExperimentFindFixView,
    "fixes": fix_views.ExperimentFixesView,
}
SWEEP_ACTIONS = {"cancel": sweep_views.SweepCancelView, "extend": sweep_views.SweepExtendView}

experiment_urls = [
    path("", views.ExperimentListCreateView.as_view(), name="experiment-list"),
    path("<int:experiment_id>/", views.ExperimentDetailView.as_view(), name="experiment-detail"),
    *(path(f"<int:experiment_id>/{action}/", view.as_view(), name=f"experiment-{action}")
      for action, view in EXPERIMENT_ACTIONS.items()),
]

sweep_urls = [
    path("", sweep_views.SweepListCreateView.as_view(), name="sweep-list"),
    path("<int:sweep_id>/", sweep_views.SweepDetailView.as_view(), name="sweep-detail"),
    *(path(f"<int:sweep_id>/{action}/", view.as_view(), name=f"sweep-{action}")
      for action, view in SWEEP_ACTIONS.items()),
    path("<int:sweep_id>/trials/<int:experiment_id>/retry/", sweep_views.SweepTrialRetryView.as_view(),
         name="sweep-trial-retry"),
    path("<int:sweep_id>/trials.csv", sweep_views.SweepTrialsCSVView.as_view(), name="sweep-trials-csv"),
]

urlpatterns = [
    path("auth/token/", views.TokenObtainView.as_view(), name="token-obtain"),
    path("auth/token/revoke/", views.TokenRevokeView.as_view(), name="token-revoke"),
    path("auth/tokens/", views.TokenListCreateView.as_view(), name="token-list"),
    path("auth/tokens/<str:token_id>/", views.TokenDetailView.as_view(), name="token-detail"),
    path("config-schema/", views.ConfigSchemaView.as_view(), name="config-schema"),
    path("experiments/", include(experiment_urls)),
    path("recommendations/<int:recommendation_id>/apply/", views.RecommendationApplyView.as_view(),
         name="recommendation-apply"),
    path("recommender/stats/", views.RecommenderStatsView.as_view(), name="recommender-stats"),
    path("sweeps/", include(sweep_urls)),
    path("autotune/", sweep_views.AutotuneView.as_view(), name="autotune"),
    path("lab/status/", lab_views.LabStatusView.as_view(), name="lab-status"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", views.SwaggerView.as_view(url_name="api:schema"), name="docs"),
]
