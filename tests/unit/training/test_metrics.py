"""Classifier metrics computed from a known confusion."""

import pytest

from training.evaluate import classification_report


def test_report_on_a_known_confusion() -> None:
    actual = ["sport", "sport", "tech", "tech", "business", "politics", "entertainment"]
    predicted = ["sport", "tech", "tech", "tech", "business", "politics", "business"]
    report = classification_report(actual, predicted)
    assert report["test_accuracy"] == pytest.approx(5 / 7, abs=1e-4)
    f1 = report["test_f1_per_class"]
    assert f1["sport"] == pytest.approx(2 / 3, abs=1e-4)  # precision 1, recall 1/2
    assert f1["tech"] == pytest.approx(0.8, abs=1e-4)  # precision 2/3, recall 1
    assert f1["entertainment"] == 0.0
    assert report["test_macro_f1"] == pytest.approx((2 / 3 + 0.8 + 2 / 3 + 1 + 0) / 5, abs=1e-4)
    rows = report["test_confusion_matrix"]["rows_actual_columns_predicted"]
    assert sum(map(sum, rows)) == 7
