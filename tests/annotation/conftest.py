"""Fixtures of the annotation tests: one real Label Studio server for the whole test session.

The server's data dir is migrated once per session (a first start takes 30-70 s), kept as a
template (for the CLI serve/stop test), and copied for the live server, which starts in
seconds. Accounts are created once; each test gets its own pair of projects.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # annotation_helpers.py, annotation_live.py (tests use --import-mode=importlib)

from hexainst.annotation import projects as pj  # noqa: E402
from hexainst.annotation.server import LabelStudioServer, ServerError, find_binary  # noqa: E402
from hexainst.annotation.session import Session  # noqa: E402
from annotation_helpers import ACCOUNTS, ADMIN  # noqa: E402



@pytest.fixture(scope="session")
def ls_template(tmp_path_factory) -> Path:
    """A Label Studio data dir migrated once (first start, clean stop), to copy from."""
    try:
        find_binary()
    except ServerError as exc:
        pytest.fail(str(exc))
    data = tmp_path_factory.mktemp("ls-template") / "data"
    server = LabelStudioServer(data, ADMIN)
    server.start(timeout=600)
    server.stop()
    for leftover in ("hexainst-server.log",):
        (data / leftover).unlink(missing_ok=True)
    return data


@pytest.fixture(scope="session")
def ls_server(ls_template, tmp_path_factory):
    """The live server of the test session (stopped by its own PID at the end)."""
    data = tmp_path_factory.mktemp("ls-live") / "data"
    shutil.copytree(ls_template, data)
    server = LabelStudioServer(data, ADMIN)
    server.start(timeout=300)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ls_tokens(ls_server) -> dict[str, str]:
    """Sign up every test account once; their API tokens by account name."""
    session = Session(admin=ADMIN, accounts=ACCOUNTS, url=ls_server.url)
    session.setup()  # also makes a default pair of projects, unused
    return dict(session.tokens)


@pytest.fixture
def ls_session(ls_server, ls_tokens) -> Session:
    """A validation round with its own, fresh junior and senior projects."""
    tag = uuid.uuid4().hex[:8]
    session = Session(
        admin=ADMIN, accounts=ACCOUNTS, url=ls_server.url, tokens=dict(ls_tokens),
        junior_title=f"juniors {tag}", senior_title=f"senior {tag}",
    )  # fmt: skip
    admin = session.client()
    session.junior_project = pj.ensure_junior_project(admin, session.junior_title)
    session.senior_project = pj.ensure_senior_project(admin, session.senior_title)
    return session
