from django.urls import path
from drf_spectacular.views import SpectacularAPIView

import experiments.api.inspect_views as inspect_views
from experiments.api import sweep_views, views

app_name = "api"

urlpatterns = [
    path("auth/token/", views.TokenObtainView.as_view(), name="token-obtain"),
    path("config-schema/", views.ConfigSchemaView.as_view(), name="config-schema"),
    path("experiments/", views.ExperimentListCreateView.as_view(), name="experiment-list"),
    path("experiments/<int:experiment_id>/", views.ExperimentDetailView.as_view(), name="experiment-detail"),
    path("experiments/<int:experiment_id>/cancel/", views.ExperimentCancelView.as_view(),
         name="experiment-cancel"),
    path("experiments/<int:experiment_id>/rerun/", views.ExperimentRerunView.as_view(), name="experiment-rerun"),
    path("experiments/<int:experiment_id>/metrics/", views.ExperimentMetricsView.as_view(),
         name="experiment-metrics"),
    path("experiments/<int:experiment_id>/weights/", views.ExperimentWeightsView.as_view(),
         name="experiment-weights"),
    path("experiments/<int:experiment_id>/predict/", inspect_views.ExperimentPredictView.as_view(),
         name="experiment-predict"),
    path("experiments/<int:experiment_id>/misclassified/", inspect_views.ExperimentMisclassifiedView.as_view(),
         name="experiment-misclassified"),
    path("experiments/<int:experiment_id>/filters/", inspect_views.ExperimentFiltersView.as_view(),
         name="experiment-filters"),
    path("recommendations/<int:recommendation_id>/apply/", views.RecommendationApplyView.as_view(),
         name="recommendation-apply"),
    path("recommender/stats/", views.RecommenderStatsView.as_view(), name="recommender-stats"),
    path("sweeps/", sweep_views.SweepListCreateView.as_view(), name="sweep-list"),
    path("sweeps/<int:sweep_id>/", sweep_views.SweepDetailView.as_view(), name="sweep-detail"),
    path("sweeps/<int:sweep_id>/cancel/", sweep_views.SweepCancelView.as_view(), name="sweep-cancel"),
    path("sweeps/<int:sweep_id>/extend/", sweep_views.SweepExtendView.as_view(), name="sweep-extend"),
    path("sweeps/<int:sweep_id>/trials/<int:experiment_id>/retry/", sweep_views.SweepTrialRetryView.as_view(),
         name="sweep-trial-retry"),
    path("sweeps/<int:sweep_id>/trials.csv", sweep_views.SweepTrialsCSVView.as_view(), name="sweep-trials-csv"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", views.SwaggerView.as_view(url_name="api:schema"), name="docs"),
]
