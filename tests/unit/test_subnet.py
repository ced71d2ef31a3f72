"""Each lab gets its own /24 in 10.77.0.0/16, and never one that is taken."""

from __future__ import annotations

import ipaddress

import pytest

from labctl.errors import LabError, UsageError
from labctl.lab import check_project, choose_net


def nets(*cidrs: str) -> list[ipaddress.IPv4Network]:
    return [ipaddress.ip_network(c) for c in cidrs]


def test_default_lab_takes_the_readme_subnet():
    assert choose_net("tlslab", nets("172.17.0.0/16")) == "10.77.0"


def test_default_lab_moves_over_when_its_subnet_is_taken():
    assert choose_net("tlslab", nets("10.77.0.0/24")) == "10.77.1"


def test_other_projects_start_elsewhere_and_are_stable():
    assert choose_net("alice", []) == choose_net("alice", [])
    assert choose_net("alice", []) != "10.77.0" or choose_net("bob", []) != "10.77.0"


def test_a_taken_subnet_is_skipped():
    first = choose_net("alice", [])
    assert choose_net("alice", nets(f"{first}.0/24")) != first


def test_an_overlapping_larger_network_counts_as_taken():
    # A /20 that covers the first choice pushes the lab past its end.
    first = choose_net("tlslab", [])
    assert first == "10.77.0"
    assert choose_net("tlslab", nets("10.77.0.0/20")) == "10.77.16"


def test_full_range_is_an_error():
    with pytest.raises(LabError, match="no free /24"):
        choose_net("alice", nets("10.77.0.0/16"))


@pytest.mark.parametrize("name", ["My Lab", "-x", "", "a" * 41, "lab/1"])
def test_bad_project_names_are_refused(name):
    with pytest.raises(UsageError, match="project name"):
        check_project(name)


@pytest.mark.parametrize("name", ["tlslab", "t1", "ci_run-42"])
def test_good_project_names(name):
    assert check_project(name) == name
