"""The REST API: DRF serializers, permissions, viewsets and the router."""
