"""One validation round: the server's address, the accounts, the two projects, and the steps.

The state lives in ``<data dir>/hexainst-annotation.json`` (mode 0600: it holds the local
accounts' passwords and tokens) so that each CLI command picks up where the last one left
off. Every step here is idempotent: rerunning it converges to the same projects and tasks.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hexainst.annotation import accounts as acc
from hexainst.annotation import export as ex
from hexainst.annotation import projects as pj
from hexainst.annotation import sync
from hexainst.annotation.outcomes import Adjudication, triage
from hexainst.annotation.server import Admin
from hexainst.kernel.errors import UserError

STATE_FILE = "hexainst-annotation.json"
EMAIL_DOMAIN = "hexainst.local"


def default_accounts(n_juniors: int = 2, n_seniors: int = 1) -> list[acc.Account]:
    """junior1..N and senior (senior1..M if several), with fresh random passwords."""
    out = [
        acc.Account("junior", f"junior{i}", f"junior{i}@{EMAIL_DOMAIN}", secrets.token_urlsafe(12))
        for i in range(1, n_juniors + 1)
    ]
    names = ["senior"] if n_seniors == 1 else [f"senior{i}" for i in range(1, n_seniors + 1)]
    out += [acc.Account("senior", n, f"{n}@{EMAIL_DOMAIN}", secrets.token_urlsafe(12)) for n in names]
    return out


def new_admin() -> Admin:
    return Admin(email=f"admin@{EMAIL_DOMAIN}", password=secrets.token_urlsafe(12), token=secrets.token_hex(20))


@dataclass
class Session:
    """Everything the CLI commands share."""

    admin: Admin
    accounts: list[acc.Account]
    url: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)  # account name -> API token
    junior_project: int | None = None
    senior_project: int | None = None
    junior_title: str = pj.JUNIOR_TITLE
    senior_title: str = pj.SENIOR_TITLE

    # ---- persistence -------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "admin": asdict(self.admin),
            "accounts": [asdict(a) for a in self.accounts],
            "url": self.url,
            "tokens": self.tokens,
            "junior_project": self.junior_project,
            "senior_project": self.senior_project,
            "junior_title": self.junior_title,
            "senior_title": self.senior_title,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Session":
        return cls(
            admin=Admin(**doc["admin"]),
            accounts=[acc.Account(**a) for a in doc["accounts"]],
            url=doc.get("url"),
            tokens=dict(doc.get("tokens", {})),
            junior_project=doc.get("junior_project"),
            senior_project=doc.get("senior_project"),
            junior_title=doc.get("junior_title", pj.JUNIOR_TITLE),
            senior_title=doc.get("senior_title", pj.SENIOR_TITLE),
        )

    def save(self, data_dir: str | os.PathLike[str]) -> Path:
        path = Path(data_dir) / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_json(), fh, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str]) -> "Session":
        path = Path(data_dir) / STATE_FILE
        try:
            return cls.from_json(json.loads(path.read_text("utf-8")))
        except FileNotFoundError:
            raise UserError(f"{path}: no annotation state here; run 'hexainst annotate up' (or serve) first") from None
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: unreadable annotation state: {exc}") from exc

    @classmethod
    def load_or_new(cls, data_dir: str | os.PathLike[str]) -> "Session":
        if (Path(data_dir) / STATE_FILE).exists():
            return cls.load(data_dir)
        return cls(admin=new_admin(), accounts=default_accounts())

    # ---- clients -----------------------------------------------------------------------
    def client(self, account: str | None = None):
        """An SDK client as the admin (default) or as the named account."""
        from label_studio_sdk import LabelStudio

        if not self.url:
            raise UserError("the annotation session has no server URL; start the server first")
        if account is None:
            token = self.admin.token
        else:
            try:
                token = self.tokens[account]
            except KeyError:
                raise UserError(f"no API token for account {account!r}; run 'hexainst annotate setup'") from None
        return LabelStudio(base_url=self.url, api_key=token, timeout=120, max_retries=3)

    def require_server(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        """Raise a :class:`UserError` that says how to start the server if none answers at ``url``."""
        import httpx

        if not self.url:
            raise UserError("the annotation session has no server URL; start the server first")
        try:
            ok = httpx.get(f"{self.url}/health", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            ok = False
        if not ok:
            where = f" --data-dir {data_dir}" if data_dir is not None else ""
            raise UserError(
                f"cannot reach the Label Studio server recorded in {data_dir or 'the session'} at {self.url}; "
                f"is it running? start it with 'hexainst annotate serve{where} --detach'"
            )

    def names(self, role: str) -> set[str]:
        return {a.name for a in self.accounts if a.role == role}

    def _project(self, which: str) -> int:
        pid = self.junior_project if which == "junior" else self.senior_project
        if pid is None:
            raise UserError(f"no {which} project yet; run 'hexainst annotate setup'")
        return pid

    # ---- steps -------------------------------------------------------------------------
    def setup(self) -> None:
        """Create (or log in) every account and create (or update) both projects."""
        admin = self.client()
        invite = acc.invite_token(admin)
        for account in self.accounts:
            self.tokens[account.name] = acc.ensure_account(self.url, invite, account)
        self.junior_project = pj.ensure_junior_project(admin, self.junior_title)
        self.senior_project = pj.ensure_senior_project(admin, self.senior_title)

    def sync_candidates(
        self, rows: Iterable[Mapping[str, Any]], batch_size: int = 100,
        on_batch: Callable[[int, int], None] | None = None, progress: bool = True,
    ) -> sync.SyncReport:  # fmt: skip
        """Import every candidate (release and reserve) into the junior project, once."""
        tasks = sync.junior_tasks(rows)
        return sync.import_missing(self.client(), self._project("junior"), tasks, batch_size, on_batch, progress)

    def users(self) -> dict[int, str]:
        """Label Studio user id -> the name verdicts record (account name, else e-mail)."""
        by_email = {a.email: a.name for a in self.accounts}
        return {u.id: by_email.get(u.email, u.email) for u in self.client().users.list()}

    def junior_export(self) -> list[dict[str, Any]]:
        return ex.fetch_export(self.client(), self._project("junior"))

    def senior_export(self) -> list[dict[str, Any]]:
        return ex.fetch_export(self.client(), self._project("senior"))

    def sync_senior(self, progress: bool = True) -> tuple[sync.SyncReport, Any]:
        """Put every instruction the juniors disagree on into the senior project, once."""
        annotations, data = ex.parse_export(self.junior_export(), self.users(), "junior project export")
        tri = triage(annotations, self.names("junior"))
        tasks = pj.senior_tasks(tri, data)
        report = sync.import_missing(self.client(), self._project("senior"), tasks, progress=progress)
        return report, tri

    def created_from(self) -> dict[str, str]:
        version = self.client().versions.get()
        return {
            "label_studio_version": str(getattr(version, "release", None) or "unknown"),
            "junior_project": f"{self.junior_title} (#{self._project('junior')})",
            "senior_project": f"{self.senior_title} (#{self._project('senior')})",
        }

    def adjudicate(
        self, save_exports: str | os.PathLike[str] | None = None
    ) -> tuple[dict[str, Any], Adjudication]:
        """Export both projects and build the validation document (nothing written here)."""
        junior, senior = self.junior_export(), self.senior_export()
        if save_exports is not None:
            folder = Path(save_exports)
            folder.mkdir(parents=True, exist_ok=True)
            for name, doc in (("junior-export.json", junior), ("senior-export.json", senior)):
                (folder / name).write_text(json.dumps(doc, ensure_ascii=False, indent=1), "utf-8")
        return ex.build_validation(
            junior, senior, self.users(), self.created_from(), self.names("junior"), self.names("senior")
        )
