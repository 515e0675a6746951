"""HTTP endpoints: the webhook, health, readiness and metrics."""
