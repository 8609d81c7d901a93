"""/metrics names counters as Model Server does: ``ovms_requests_success``, in the samples and in
the HELP and TYPE lines that declare them (a scraper reads the type from the line whose name
matches the samples)."""

from __future__ import annotations

from kubevino_runtime.metrics import DEFAULT_FAMILIES, Metrics


def test_counters_are_declared_and_sampled_under_model_servers_names() -> None:
    metrics = Metrics()
    metrics.requests_success.labels("KServe", "gRPC", "ModelInfer", "m", "1").inc()
    text = metrics.exposition(DEFAULT_FAMILIES).decode()
    assert "# TYPE ovms_requests_success counter" in text
    assert "# HELP ovms_requests_success Number of successful requests" in text
    assert 'ovms_requests_success{api="KServe"' in text
    assert "_total" not in text
    assert "_created" not in text
