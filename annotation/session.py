"""One validation round: one Label Studio instance per person, the projects, and the steps.

Blind by construction. Label Studio's community edition lets every member of an instance read
every project and annotation of it (Data Manager, task view, API), so settings cannot keep two
juniors apart. A round therefore runs one Label Studio *instance* per person: each junior and
the senior get their own server process, data dir, database, secret key and login, and the
toolkit's own admin account on it. No instance holds anything another person made:

* every junior instance holds the candidates (a junior project), and only that junior's verdicts;
* the senior instance holds only the tasks the juniors disagree on, with both verdicts as text
  (no predictions: nothing is pre-selected);
* the toolkit syncs tasks out (``sync_candidates``, ``sync_senior``) and reads verdicts back
  (``adjudicate``) with each instance's admin token. A person's token works on their instance only.

Layout of the round's folder (``data_dir``)::

    hexainst-annotation.json   state: URLs, project ids, passwords and API tokens (mode 0600)
    template/                  a migrated, empty Label Studio data dir (made once, copied per person)
    junior1/ junior2/ senior/  one Label Studio data dir per person (the instance's name)

Every step is idempotent: rerunning it converges to the same projects and tasks.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from hexainst.annotation import accounts as acc
from hexainst.annotation import export as ex
from hexainst.annotation import projects as pj
from hexainst.annotation import server as srv
from hexainst.annotation import sync
from hexainst.annotation.config import DEFAULTS
from hexainst.annotation.drafts import with_drafts
from hexainst.annotation.outcomes import Adjudication, Annotation, triage
from hexainst.annotation.server import Admin
from hexainst.kernel import atomic
from hexainst.kernel.errors import UserError
from hexainst.kernel.identity import check as check_identity
from hexainst.kernel.identity import person
from hexainst.kernel.settings import SettingError

STATE_FILE = "hexainst-annotation.json"
STATE_FORMAT = "hexainst-annotation-round"
STATE_VERSION = 3  # 3: each instance records its annotator's identity (a state of version 2 reads as people)
TEMPLATE_DIR = "template"
EMAIL_DOMAIN = "hexainst.local"
ROLES = ("junior", "senior")


def new_admin() -> Admin:
    """The toolkit's own account on one instance (a fresh password and API token)."""
    return Admin(email=f"admin@{EMAIL_DOMAIN}", password=secrets.token_urlsafe(12), token=secrets.token_hex(20))


def default_accounts(n_juniors: int = DEFAULTS.juniors) -> list[acc.Account]:
    """junior1..N and senior, with fresh random passwords."""
    out = [
        acc.Account("junior", f"junior{i}", f"junior{i}@{EMAIL_DOMAIN}", secrets.token_urlsafe(12))
        for i in range(1, n_juniors + 1)
    ]
    return out + [acc.Account("senior", "senior", f"senior@{EMAIL_DOMAIN}", secrets.token_urlsafe(12))]


@dataclass
class Instance:
    """One person's Label Studio: their account, the toolkit's admin on it, where it serves.

    ``name`` is the person's account name and the instance's folder under the round's folder.
    """

    account: acc.Account
    admin: Admin
    url: str | None = None
    token: str | None = None  # the person's API token on this instance
    #: Who annotates in this slot (``hexainst.kernel.identity``): a person unless an import or a judge
    #: run recorded a model; every verdict exported from this instance carries it.
    identity: dict[str, Any] = field(default_factory=person)
    #: sha256 of every verdict file imported into this slot (the same file cannot fill another slot).
    imported: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def port(self) -> int | None:
        """The port chosen on the instance's first start (recorded in its URL); it keeps it across restarts."""
        return urlsplit(self.url).port if self.url else None

    @property
    def role(self) -> str:
        return self.account.role


@dataclass
class Session:
    """A validation round: its folder, one instance per person, the projects' titles and ids."""

    data_dir: Path
    instances: list[Instance]
    junior_title: str = pj.JUNIOR_TITLE
    senior_title: str = pj.SENIOR_TITLE
    projects: dict[str, int] = field(default_factory=dict)  # instance name -> its project's id
    #: Names of the instances :meth:`start` found running (and left as they were).
    already_running: list[str] = field(default_factory=list)
    #: Instance name -> instruction ids of its tasks with a draft not submitted (found by :meth:`export`).
    drafts: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        names = [i.name for i in self.instances]
        if len(set(names)) != len(names):
            raise UserError(f"annotator names must be unique, got {names}")
        if [i.role for i in self.instances].count("senior") != 1 or not self.juniors:
            raise UserError("a round needs one senior and at least one junior")

    @classmethod
    def create(cls, data_dir: str | os.PathLike[str], accounts: Iterable[acc.Account] | None = None) -> Session:
        """A new round (nothing started): one instance per account, each with its own admin."""
        accounts = list(accounts) if accounts is not None else default_accounts()
        return cls(Path(data_dir), [Instance(a, new_admin()) for a in accounts])

    # ---- who is who --------------------------------------------------------------------
    @property
    def juniors(self) -> list[Instance]:
        return [i for i in self.instances if i.role == "junior"]

    @property
    def senior(self) -> Instance:
        return next(i for i in self.instances if i.role == "senior")

    def instance(self, name: str) -> Instance:
        for inst in self.instances:
            if inst.name == name:
                return inst
        raise UserError(f"no annotator {name!r} in this round (annotators: {', '.join(i.name for i in self.instances)})")

    def names(self, role: str) -> set[str]:
        return {i.name for i in self.instances if i.role == role}

    def identities(self) -> dict[str, dict[str, Any]]:
        """Annotator name -> identity (person or model), as every exported verdict records it."""
        return {i.name: dict(i.identity) for i in self.instances}

    def annotators(self) -> list[dict[str, Any]]:
        """The round's annotators for the validation file: name, role, identity."""
        return [{"annotator": i.name, "role": i.role, "identity": dict(i.identity)} for i in self.instances]

    def folder(self, inst: Instance) -> Path:
        """The instance's Label Studio data dir."""
        return self.data_dir / inst.name

    # ---- persistence -------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "format_version": STATE_VERSION,
            "junior_title": self.junior_title,
            "senior_title": self.senior_title,
            "instances": [
                {"account": asdict(i.account), "admin": asdict(i.admin), "url": i.url, "token": i.token,
                 "identity": i.identity, "imported": i.imported}
                for i in self.instances
            ],
            "projects": self.projects,
        }

    @classmethod
    def from_json(cls, data_dir: Path, doc: Mapping[str, Any]) -> Session:
        return cls(
            data_dir=data_dir,
            instances=[
                Instance(acc.Account(**i["account"]), Admin(**i["admin"]), i.get("url"), i.get("token"),
                         check_identity(i.get("identity") or person(), f"annotator {i['account']['name']}"),
                         [str(h) for h in i.get("imported") or []])
                for i in doc["instances"]
            ],
            junior_title=doc.get("junior_title", pj.JUNIOR_TITLE),
            senior_title=doc.get("senior_title", pj.SENIOR_TITLE),
            projects={str(k): int(v) for k, v in doc.get("projects", {}).items()},
        )

    def save(self) -> Path:
        """Write the state file atomically, readable by its owner only (it holds passwords and tokens),
        in the round's folder, which is owner-only too (it holds every annotator's database)."""
        srv.private_dir(self.data_dir)
        path = self.data_dir / STATE_FILE
        return atomic.write_text(path, json.dumps(self.to_json(), indent=1), mode=0o600)

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str]) -> Session:
        data_dir = Path(data_dir)
        path = data_dir / STATE_FILE
        try:
            doc = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: no annotation round here; start one with 'hexainst annotate up --data-dir {data_dir}'") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{path}: unreadable annotation state ({exc})") from None
        if isinstance(doc, dict) and "admin" in doc and "instances" not in doc:
            raise UserError(
                f"{path}: a round of an earlier toolkit (one shared Label Studio, juniors not blind); "
                "start a new round in a new folder"
            )
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
            raise UserError(f"{path}: not an annotation state file (format {STATE_FORMAT!r} expected)")
        try:
            return cls.from_json(data_dir, doc)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{path}: unreadable annotation state ({type(exc).__name__}: {exc})") from None

    @classmethod
    def load_or_create(cls, data_dir: str | os.PathLike[str], n_juniors: int = DEFAULTS.juniors) -> Session:
        """The round in ``data_dir``; a new one if the folder is new or empty.

        A folder that holds anything but a round is refused (never written into, never deleted).
        """
        data_dir = Path(data_dir)
        if (data_dir / STATE_FILE).exists():
            return cls.load(data_dir)
        if data_dir.exists() and not data_dir.is_dir():
            raise UserError(f"{data_dir} is a file, not a folder; choose a new folder for the round")
        # A folder holding only a migrated template (left by an interrupted first 'up', or put there
        # to skip the migrations) is a new round too.
        foreign = ([p.name for p in data_dir.iterdir() if not (p.name == TEMPLATE_DIR and srv.template_ready(p))]
                   if data_dir.is_dir() else [])
        if foreign:
            raise UserError(
                f"{data_dir} holds files but no {STATE_FILE}: it is not an annotation round, and it is left "
                "as it is; choose a new or empty folder"
            )
        if n_juniors < 1:
            raise SettingError("juniors", f"must be at least 1, got {n_juniors}")
        return cls.create(data_dir, default_accounts(n_juniors))

    # ---- clients -----------------------------------------------------------------------
    def client(self, inst: Instance | str, as_person: bool = False):
        """An SDK client on ``inst``: the toolkit's admin (default) or the person (``as_person``)."""
        from label_studio_sdk import LabelStudio  # deferred: the SDK's client (~0.7 s); offline round steps open none

        inst = self.instance(inst) if isinstance(inst, str) else inst
        if not inst.url:
            raise UserError(f"{inst.name}'s Label Studio has no URL yet; start the round with 'hexainst annotate up'")
        token = inst.admin.token
        if as_person:
            if not inst.token:
                raise UserError(f"no API token for {inst.name}; run 'hexainst annotate setup'")
            token = inst.token
        return LabelStudio(base_url=inst.url, api_key=token, timeout=120, max_retries=3)

    def require_servers(self) -> None:
        """Raise a :class:`UserError` naming the first instance that does not answer, and how to start it."""
        for inst in self.instances:
            ok = False
            if inst.url:
                try:
                    ok = httpx.get(f"{inst.url}/health", timeout=5.0).status_code == 200
                except httpx.HTTPError:
                    ok = False
            if not ok:
                raise UserError(
                    f"cannot reach {inst.name}'s Label Studio at {inst.url or '(never started)'}; is the round running? "
                    f"start it with 'hexainst annotate serve --data-dir {self.data_dir} --detach'"
                )

    def project(self, inst: Instance) -> int:
        try:
            return self.projects[inst.name]
        except KeyError:
            raise UserError(f"no project on {inst.name}'s Label Studio yet; run 'hexainst annotate setup'") from None

    # ---- deployment --------------------------------------------------------------------
    def prepare_instances(self, progress: bool = True, timeout: float = DEFAULTS.migrate_timeout_s) -> None:
        """Make every missing instance folder from the template (migrated once, on first use)."""
        missing = [i for i in self.instances if not self.folder(i).exists()]
        if not missing:
            return
        template = self.data_dir / TEMPLATE_DIR
        srv.migrate_template(template, timeout=timeout, progress=progress)
        for inst in missing:
            srv.copy_template(template, self.folder(inst))

    def servers(self, port: int | None = None, host: str = DEFAULTS.host) -> list[srv.LabelStudioServer]:
        """One server object per instance (not started): on its recorded port if it has one, else
        ``port`` + its position (``port`` None: a free port, recorded on its first start)."""
        return [
            srv.LabelStudioServer(
                self.folder(inst), inst.admin, host=host, name=f"{inst.name}'s Label Studio",
                port=inst.port if inst.port is not None else (None if port is None else port + n),
                fixed_port=inst.port is not None,
            )  # fmt: skip
            for n, inst in enumerate(self.instances)
        ]

    def running(self) -> dict[str, tuple[int, int]]:
        """Instance name -> (PID, port) of each of the round's servers that is running (checked to be ours)."""
        out = {}
        for inst in self.instances:
            found = srv.running_pid(self.folder(inst))
            if found is not None:
                out[inst.name] = found
        return out

    def check_ports(self, port: int | None, host: str = DEFAULTS.host) -> None:
        """Raise a :class:`UserError` before any work if a port an instance needs is busy or not its own
        (a :class:`SettingError` naming ``port`` when the port asked for is the cause).

        An instance that served before keeps its port (its annotator's link names it): ``port``
        must then agree with it, and the port must be free unless that instance is running.
        """
        running = self.running()
        for n, inst in enumerate(self.instances):
            if inst.port is None:
                continue
            if port is not None and port + n != inst.port:
                raise SettingError(
                    "port", f"{port}: {inst.name}'s Label Studio serves on port {inst.port} (recorded in this round; "
                    f"its annotator's link names it), not {port + n}: leave it out to restart the round on its own ports"
                )
            if inst.name not in running and not srv.port_is_free(inst.port, host):
                raise UserError(
                    f"port {inst.port} on {host}, where {inst.name}'s Label Studio served, is busy (another program "
                    "took it); free it and start again: the annotators' links name that port"
                )
        if port is None:
            return
        for n, inst in enumerate(self.instances):
            if inst.port is not None:
                continue
            if port + n > 65535 or not srv.port_is_free(port + n, host):
                raise SettingError(
                    "port", f"{port}: port {port + n} on {host} (for {inst.name}'s Label Studio) is busy or invalid; "
                    f"a round of {len(self.instances)} needs ports {port}-{port + len(self.instances) - 1}; "
                    "choose another, or leave it out for free ports"
                )

    def preflight(self, port: int | None = None, host: str = DEFAULTS.host, create_missing: bool = True) -> None:
        """Every check that can fail before a server starts: ports, lost folders.

        ``create_missing=False`` (a restart) refuses to recreate an instance whose folder is gone,
        rather than bring it back empty. An instance already running is left running.
        """
        self.check_ports(port, host)
        running = self.running()
        for inst in self.instances:
            if inst.name in running and inst.port is not None and running[inst.name][1] != inst.port:
                raise UserError(
                    f"{inst.name}'s Label Studio (PID {running[inst.name][0]}) runs on port {running[inst.name][1]}, "
                    f"not on its recorded port {inst.port}; stop the round first ('hexainst annotate stop --data-dir {self.data_dir}')"
                )
            if not create_missing and not self.folder(inst).is_dir():
                raise UserError(
                    f"{inst.name}'s Label Studio data dir {self.folder(inst)} is missing (with its verdicts); "
                    "'hexainst annotate up' would recreate it empty"
                )

    def start(
        self, port: int | None = None, host: str = DEFAULTS.host, timeout: float = DEFAULTS.start_timeout_s,
        progress: bool = True, create_missing: bool = True,
    ) -> list[srv.LabelStudioServer]:  # fmt: skip
        """Prepare and start every instance that is not running (see :meth:`preflight`); on any
        failure, stop the ones started. Returns the servers started (those already running are
        left as they are: :attr:`already_running` names them)."""
        self.preflight(port, host, create_missing)
        srv.private_dir(self.data_dir)
        self.prepare_instances(progress=progress)
        srv.make_private(self.data_dir)  # a round made by an earlier toolkit, or files copied in
        running = self.running()
        self.already_running = [inst.name for inst in self.instances if inst.name in running]
        started: list[srv.LabelStudioServer] = []
        try:
            for inst, server in zip(self.instances, self.servers(port, host)):
                if inst.name in running:
                    continue
                server.start(timeout=timeout)
                started.append(server)
                inst.url = server.url
        except BaseException:
            for server in started:
                server.stop()
            raise
        self.save()
        return started

    def stop(self) -> list[str]:
        """Stop every detached instance of the round (by its PID file); the names of those stopped."""
        stopped = srv.stop_by_pid_files([self.folder(inst) for inst in self.instances])
        return [inst.name for inst, was_running in zip(self.instances, stopped) if was_running]

    # ---- steps -------------------------------------------------------------------------
    def setup(self) -> None:
        """On every instance: the person's account (signed up or logged in) and their project."""
        self.ensure_accounts()
        self.ensure_projects()

    def ensure_accounts(self) -> None:
        """Sign up (or log in) each person on their own instance, with its invite link; keep their token."""
        for inst in self.instances:
            inst.token = acc.ensure_account(inst.url, acc.invite_token(self.client(inst)), inst.account)

    def ensure_projects(self) -> None:
        """Create (or update) the junior project on each junior's instance, the senior project on the senior's."""
        for inst in self.instances:
            admin = self.client(inst)
            if inst.role == "junior":
                self.projects[inst.name] = pj.ensure_junior_project(admin, self.junior_title)
            else:
                self.projects[inst.name] = pj.ensure_senior_project(admin, self.senior_title)

    def sync_candidates(
        self, rows: Iterable[Mapping[str, Any]], batch_size: int = DEFAULTS.batch_size,
        on_batch: Callable[[str, int, int], None] | None = None, progress: bool = True,
    ) -> dict[str, sync.SyncReport]:  # fmt: skip
        """Send every candidate to every junior, once: only ids a junior's project lacks are imported.

        A new batch of candidates (new ids, e.g. a top-up of the reserve) is added beside the tasks
        already there; annotated tasks are never touched. Returns each junior's report.
        """
        tasks = sync.junior_tasks(rows)
        reports = {}
        for inst in self.juniors:
            callback = None if on_batch is None else (lambda done, total, name=inst.name: on_batch(name, done, total))
            reports[inst.name] = sync.import_missing(
                self.client(inst), self.project(inst), tasks, batch_size, callback, progress, where=f"{inst.name}'s project"
            )
        return reports

    def users(self, inst: Instance) -> dict[int, str]:
        """Label Studio user id -> the name verdicts record, on one instance (account name, else e-mail)."""
        by_email = {inst.account.email: inst.name}
        return {u.id: by_email.get(u.email, u.email) for u in self.client(inst).users.list()}

    def export(self, inst: Instance) -> list[dict[str, Any]]:
        """The project's full export; the tasks holding a draft not submitted go to :attr:`drafts`."""
        doc = ex.fetch_export(self.client(inst), self.project(inst), where=f"{inst.name}'s project")
        self.drafts[inst.name] = with_drafts(doc)
        return doc

    def junior_annotations(
        self, save_exports: Path | None = None
    ) -> tuple[dict[str, list[Annotation]], dict[str, dict[str, Any]]]:
        """Every junior's annotations by instruction id, merged across the junior instances, and task data."""
        merged: dict[str, list[Annotation]] = {}
        data: dict[str, dict[str, Any]] = {}
        for inst in self.juniors:
            doc = self.export(inst)
            _save(save_exports, f"{inst.name}-export.json", doc)
            anns, task_data = ex.parse_export(doc, self.users(inst), f"{inst.name}'s project export", self.identities())
            for iid, items in anns.items():
                merged.setdefault(iid, []).extend(items)
            for iid, d in task_data.items():
                data.setdefault(iid, d)
        return merged, data

    def sync_senior(self, progress: bool = True) -> tuple[sync.SyncReport, Any]:
        """Put every instruction the juniors disagree on into the senior's project, once."""
        annotations, data = self.junior_annotations()
        tri = triage(annotations, self.names("junior"))
        tasks = pj.senior_tasks(tri, data)
        senior = self.senior
        report = sync.import_missing(
            self.client(senior), self.project(senior), tasks, progress=progress, where=f"{senior.name}'s project"
        )
        return report, tri

    def created_from(self) -> dict[str, str]:
        version = self.client(self.senior).versions.get()
        juniors = ", ".join(f"{i.name} #{self.project(i)}" for i in self.juniors)
        return {
            "label_studio_version": str(getattr(version, "release", None) or "unknown"),
            "junior_project": f"{self.junior_title} (one instance per junior: {juniors})",
            "senior_project": f"{self.senior_title} ({self.senior.name} #{self.project(self.senior)})",
        }

    def adjudicate(self, save_exports: str | os.PathLike[str] | None = None) -> tuple[dict[str, Any], Adjudication]:
        """Export every project and build the validation document (nothing else written here)."""
        folder = Path(save_exports) if save_exports is not None else None
        junior_anns, _ = self.junior_annotations(folder)
        senior = self.senior
        senior_doc = self.export(senior)
        _save(folder, f"{senior.name}-export.json", senior_doc)
        senior_anns, _ = ex.parse_export(senior_doc, self.users(senior), f"{senior.name}'s project export", self.identities())
        return ex.build_validation(
            junior_anns, senior_anns, self.created_from(), self.names("junior"), self.names("senior"), self.annotators()
        )


def _save(folder: Path | None, name: str, doc: Any) -> None:
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / name, json.dumps(doc, ensure_ascii=False, indent=1), mode=0o600)  # verdicts: owner only
