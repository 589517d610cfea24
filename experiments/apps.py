from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "experiments"
    verbose_name = "Experiments"

    def ready(self) -> None:
        # Wiring, in one place: what follows a run's end (advice first, then its sweep's next
        # trials), and the Celery worker's signal handlers (they only fire inside a worker).
        from experiments import worker_hooks
        from experiments.services import (
            artifacts,
            fixes,
            inspection,
            lifecycle,
            recommendations,
            sweeps,
            tokens,
        )

        lifecycle.subscribe_run_ended(artifacts.on_run_ended)  # first: the sizes others read are final
        lifecycle.subscribe_run_ended(inspection.on_run_ended)  # the misclassified list, for runs with weights
        lifecycle.subscribe_run_ended(recommendations.on_run_ended)
        lifecycle.subscribe_run_ended(sweeps.on_run_ended)
        lifecycle.subscribe_run_ended(fixes.on_run_ended)  # after the coordinator: a fix sweep that ended
        worker_hooks.connect()
        tokens.connect()  # a password change ends the user's API tokens
