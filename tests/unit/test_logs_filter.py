"""CloudWatch Logs plain-term filter patterns."""

from lamina.api.logs import matches


def test_terms_all_must_occur():
    assert matches("ERROR timeout", "ERROR: call timeout after 3s")
    assert not matches("ERROR timeout", "ERROR: bad input")


def test_alternatives_exclusions_and_phrases():
    assert matches("?ERROR ?WARN", "WARN disk")
    assert not matches("?ERROR ?WARN", "INFO ok")
    assert not matches("ERROR -retry", "ERROR will retry")
    assert matches('"task timed out"', "RequestId: x task timed out")
    assert not matches('"task timed out"', "task was timed and out")


def test_empty_pattern_matches_everything_and_case_matters():
    assert matches("", "anything")
    assert not matches("error", "ERROR")
