"""Fixtures of the annotation tests: one real round of Label Studio instances for the whole session.

A round is one instance per annotator (junior1, junior2, senior), as ``hexainst annotate up``
deploys it. Creating a Label Studio database takes 30-140 s here, so it is done once into a
template (kept in pytest's cache folder between runs, keyed on the server version) and every
instance starts from a copy, in seconds. Accounts are created once; each test gets its own
projects on every instance.
"""

from __future__ import annotations

import dataclasses
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # annotation_helpers.py, annotation_live.py (tests use --import-mode=importlib)

from annotation_helpers import ACCOUNTS, seed_template

from hexainst.annotation.server import SERVER_VERSION, ServerError, find_binary, migrate_template
from hexainst.annotation.session import Session
from hexainst.kernel.identity import person


@pytest.fixture(scope="session")
def ls_template(request, tmp_path_factory) -> Path:
    """A migrated, account-less Label Studio data dir to copy instances from."""
    try:
        find_binary()
    except ServerError as exc:
        pytest.fail(str(exc))
    cache = getattr(request.config, "cache", None)
    folder = (
        cache.mkdir(f"hexainst-ls-template-{SERVER_VERSION}") / "data"
        if cache is not None
        else tmp_path_factory.mktemp("ls-template") / "data"
    )
    return migrate_template(folder, progress=False)


@pytest.fixture(scope="session")
def ls_round(ls_template, tmp_path_factory):
    """The live round of the test session: (session, servers by instance name), stopped at the end."""
    session = Session.create(seed_template(ls_template, tmp_path_factory.mktemp("round")), ACCOUNTS)
    servers = session.start(progress=False)
    try:
        session.ensure_accounts()
        yield session, {inst.name: server for inst, server in zip(session.instances, servers)}
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def ls_session(ls_round) -> Session:
    """The live round with fresh projects of this test on every instance."""
    shared, _ = ls_round
    tag = uuid.uuid4().hex[:8]
    # Each test's own copy of the instances: an identity a test records (import, judge) stays in that test.
    instances = [dataclasses.replace(i, identity=person(), imported=[]) for i in shared.instances]
    session = Session(
        data_dir=shared.data_dir, instances=instances,
        junior_title=f"juniors {tag}", senior_title=f"senior {tag}",
    )  # fmt: skip
    session.ensure_projects()
    return session


@pytest.fixture
def ls_servers(ls_round):
    """The live round's server objects by instance name (to kill and restart one)."""
    return ls_round[1]
