"""domain: accuracy and reasoning tokens per domain."""

from __future__ import annotations

import pytest

from reasonperf.analysis.domains import analyze_domains
from tests.test_analysis_data import make_run, request


def test_accuracy_and_reasoning_per_domain():
    rows = [
        request(0, domain="math", reasoning_tokens=1000, correct=True),
        request(1, domain="math", reasoning_tokens=3000, correct=False),
        request(2, domain="chat", reasoning_tokens=50),
        request(3, domain="science", reasoning_tokens=400, correct=True),
        request(4, domain=None, reasoning_tokens=10),
    ]
    result = analyze_domains(make_run(rows))
    by = {g["domain"]: g for g in result.numbers["by_domain"]}
    assert result.numbers["domains"] == ["chat", "math", "science", "unknown"]
    assert by["math"]["reasoning_tokens_mean"] == pytest.approx(2000.0)
    assert by["math"]["accuracy"] == pytest.approx(0.5)
    assert by["science"]["accuracy"] == pytest.approx(1.0)
    assert by["chat"]["accuracy"] is None  # ungraded
    text = " ".join(result.findings)
    assert "longest for math" in text and "shortest for unknown" in text
    assert "highest for science" in text
    assert result.tables[0].columns[0] == "domain"


def test_domain_skipped_without_labels():
    result = analyze_domains(make_run([request(0), request(1)]))
    assert result.skipped and "domain" in result.skipped


def test_equal_domains_are_called_the_same():
    rows = [request(0, domain="math", correct=True), request(1, domain="chat", correct=True)]
    findings = analyze_domains(make_run(rows)).findings
    assert findings == ["Reasoning length is the same in every domain.",
                        "Accuracy is the same in every graded domain."]
