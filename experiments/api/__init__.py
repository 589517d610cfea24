"""The REST API under /api/ (views, serializers, urls)."""
