"""Tests of the deployment artefacts: Prometheus alert rules and the Alertmanager configuration."""
