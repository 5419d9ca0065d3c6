"""The building blocks: ECR wildcards against commit SHAs, lifecycle policies evaluated as ECR does, secret names."""

from __future__ import annotations

import fnmatch
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opskit.checks.lifecycle import PolicyError, evaluate, governing_rule, parse_policy
from opskit.checks.secrets import secret_reason
from opskit.checks.wildcards import can_match_commit_sha, matches_every_commit_sha, wildcard_matches
from opskit.records import COMMIT_SHA, ImageRecord

NOW = datetime(2026, 6, 1, tzinfo=UTC)
shas = st.text(alphabet="0123456789abcdef", min_size=7, max_size=40)
plain = st.text(alphabet="abcdef0123456789xyz._-*", max_size=12)


@given(pattern=plain, text=st.text(alphabet="abcdef0123456789xyz._-", max_size=12))
def test_wildcards_match_as_shell_globs_without_brackets(pattern: str, text: str) -> None:
    assert wildcard_matches(pattern, text) == fnmatch.fnmatchcase(text, pattern)


@given(sha=shas, cuts=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=3))
def test_a_filter_carved_from_a_sha_can_match_a_sha(sha: str, cuts: list[tuple[int, int]]) -> None:
    pattern = sha
    for start, length in cuts:  # replace runs of the SHA by stars: the SHA still matches
        start = min(start, len(pattern))
        pattern = pattern[:start] + "*" + pattern[start + length :]
    assert wildcard_matches(pattern, sha)
    assert can_match_commit_sha(pattern)


@given(pattern=plain, sha=shas)
def test_can_match_is_exact(pattern: str, sha: str) -> None:
    if can_match_commit_sha(pattern):  # a witness: the first star stretched with zeros to 7 characters, others empty
        literal = pattern.replace("*", "")
        witness = pattern.replace("*", "0" * max(0, 7 - len(literal)), 1).replace("*", "")
        assert COMMIT_SHA.match(witness) and wildcard_matches(pattern, witness)
    else:
        assert not wildcard_matches(pattern, sha)


@pytest.mark.parametrize(
    ("pattern", "can", "every"),
    [
        ("*", True, True),
        ("**", True, True),
        ("latest", False, False),
        ("v*", False, False),
        ("release-*", False, False),
        ("dev-*", False, False),
        ("*-dev", False, False),
        ("a*", True, False),
        ("*0", True, False),
        ("0*0*0", True, False),
        ("deadbeef", True, False),
        ("cafe", False, False),
        ("A*", False, False),  # commit SHA tags are lowercase
        ("f" * 41, False, False),
    ],
)
def test_filters_against_commit_shas(pattern: str, can: bool, every: bool) -> None:
    assert can_match_commit_sha(pattern) is can
    assert matches_every_commit_sha(pattern) is every


# -- lifecycle policies ------------------------------------------------------------------------------------------
def text(*rules: dict[str, object]) -> str:
    return json.dumps({"rules": list(rules)})


def r(priority: int, status: str, count_type: str, number: int, **selection: object) -> dict[str, object]:
    return {
        "rulePriority": priority,
        "selection": {"tagStatus": status, "countType": count_type, "countNumber": number, **selection},
        "action": {"type": "expire"},
    }


def img(digest: str, *tags: str, days_ago: int = 1) -> ImageRecord:
    return ImageRecord("web", "1", digest, tags, NOW - timedelta(days=days_ago), 1, None, None)


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ("nope", "not JSON"),
        ("[]", "no rules"),
        ('{"rules": []}', "no rules"),
        (text({"selection": {"countNumber": 1}}), "rulePriority"),
        (text(r(1, "sometimes", "imageCountMoreThan", 1)), "tagStatus 'sometimes'"),
        (text(r(1, "any", "imageCountMoreThan", 1), r(1, "untagged", "imageCountMoreThan", 1)), "share a rulePriority"),
    ],
)
def test_policies_ecr_would_refuse(policy: str, says: str) -> None:
    with pytest.raises(PolicyError, match=says):
        parse_policy(policy)


def test_rules_apply_by_priority_and_the_first_that_matches_governs() -> None:
    rules = parse_policy(
        text(
            r(3, "any", "sinceImagePushed", 30),
            r(1, "tagged", "imageCountMoreThan", 1, tagPrefixList=["prod"]),
            r(2, "untagged", "imageCountMoreThan", 1),
        )
    )
    assert [x.priority for x in rules] == [1, 2, 3]
    governing = {tags: governing_rule(rules, tags) for tags in (("prod-1",), (), ("dev-1",))}
    assert {tags: rule.priority for tags, rule in governing.items() if rule} == {("prod-1",): 1, (): 2, ("dev-1",): 3}


def test_evaluation_counts_newest_first_and_ages_by_push_time() -> None:
    rules = parse_policy(
        text(
            r(1, "tagged", "imageCountMoreThan", 2, tagPrefixList=["prod"]),
            r(2, "any", "sinceImagePushed", 30),
        )
    )
    images = [
        img("p1", "prod-1", days_ago=40),
        img("p2", "prod-2", days_ago=20),
        img("p3", "prod-3", days_ago=10),
        img("d1", "dev-1", days_ago=40),
        img("d2", "dev-2", days_ago=5),
    ]
    verdicts = evaluate(rules, images, NOW)
    assert verdicts["p1"].removed_by(NOW)  # the third-newest prod image
    assert not verdicts["p2"].removed_by(NOW) and verdicts["p2"].due is None  # kept by the count
    assert verdicts["d1"].removed_by(NOW)  # older than 30 days
    assert verdicts["d2"].due == NOW + timedelta(days=25)  # in 25 days
    # Rule 2 still counts prod images but cannot expire them: p1 is 40 days old, and it is rule 1's.
    assert verdicts["p1"].rule.priority == 1


def test_prefix_and_pattern_lists_need_every_entry_to_match_some_tag() -> None:
    (rule,) = parse_policy(text(r(1, "tagged", "imageCountMoreThan", 1, tagPatternList=["prod*", "*-eu"])))
    assert rule.selects(("prod-1", "build-eu"))
    assert not rule.selects(("prod-1",))
    (rule,) = parse_policy(text(r(1, "tagged", "imageCountMoreThan", 1, tagPrefixList=["a", "b"])))
    assert rule.selects(("a1", "b1")) and not rule.selects(("a1",)) and not rule.selects(())


# -- secrets -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("AWS_ACCESS_KEY_ID", "x", True),
        ("ECS_ENGINE_AUTH_DATA", "{}", True),
        ("STRIPE_SECRET", "abc", True),
        ("GITHUB_TOKEN", "abc", True),
        ("OPENAI_API_KEY", "abc", True),
        ("X", "ghp_" + "a" * 36, True),
        ("X", "https://user:pa55@example.com/x", True),
        ("X", "https://example.com/x", False),
        ("TOKEN_TTL", "300", False),
        ("SECRET_ARN", "arn:aws:secretsmanager:x", False),
        ("DB_PASSWORD", "", False),  # set empty: nothing leaks
        ("DB_PASSWORD_FILE", "/run/secrets/db", False),
        ("LOG_LEVEL", "info", False),
    ],
)
def test_secret_names_and_values(name: str, value: str, secret: bool) -> None:
    reason = secret_reason(name, value)
    assert (reason is not None) is secret
    if reason:
        assert value not in reason or not value
