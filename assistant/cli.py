"""``python -m assistant``: ingest, search, ask, list and delete documents, download models."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from assistant.errors import AssistantError, InputError
from assistant.models import presets
from assistant.models.presets import PRESETS
from assistant.settings import Settings, settings_or_exit


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m assistant", description=__doc__)
    p.add_argument("--user", metavar="NAME", help="work in this user's knowledge bases (the ones they see "
                   "after signing in); without it, the local user's")
    p.add_argument("--kb", metavar="NAME", help="which knowledge base, by name or id (see `kbs list`); "
                   "`shared`: the shared library every signed-in user reads; without it, the first one")
    sub = p.add_subparsers(dest="command", required=True)
    ingest = sub.add_parser("ingest", help="add files or folders to the knowledge base")
    ingest.add_argument("paths", nargs="+", type=Path)
    search = sub.add_parser("search", help="search the knowledge base by text and/or image")
    search.add_argument("text", nargs="?", default="")
    search.add_argument("--image", type=Path, action="append", default=[])
    search.add_argument("--k", type=int, default=None)
    search.add_argument("--json", action="store_true", help="print hits as JSON")
    ask = sub.add_parser("ask", help="ask the assistant; the answer streams to stdout")
    ask.add_argument("text")
    ask.add_argument("--image", type=Path, action="append", default=[])
    ask.add_argument("--no-knowledge", action="store_true")
    ask.add_argument("--json", action="store_true", help="print the whole answer as JSON once it is complete: "
                     "text, sources (cited marked), notice and its consistency with the images")
    sub.add_parser("docs", help="list the documents in the knowledge base")
    delete = sub.add_parser("delete", help="delete a document and everything it produced")
    delete.add_argument("doc_id", metavar="DOC", help="document id, source path, or file name")
    download = sub.add_parser("download", help="fetch the configured models (or a preset's) into the Hugging "
                              "Face cache, for a machine without network; the sizes are shown first")
    download.add_argument("--preset", help="the preset's model instead of the configured one: "
                          + ", ".join(PRESETS))
    evaluate = sub.add_parser("eval", help="quality on a labelled set: retrieval (hit@k, MRR per direction), "
                              "abstention, near-duplicates, and with --answers the model's answers")
    evaluate.add_argument("file", type=Path)
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--answers", action="store_true", help="also ask the configured model each question "
                          "that has an expected answer: accuracy and citation precision/recall")
    calibrate = sub.add_parser("calibrate", help="propose relevance thresholds, one per space "
                               "(ASSISTANT_RETRIEVAL__MIN_SCORE, MIN_TEXT_SCORE, MIN_CROSS_SCORE), from a "
                               "labelled set of answerable and unanswerable questions")
    calibrate.add_argument("file", type=Path)
    calibrate.add_argument("--json", action="store_true")
    audit = sub.add_parser("audit", help="the audit log (ASSISTANT_AUDIT__ENABLED): verify its chain, export it")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    audit_sub.add_parser("verify", help="check that no record was changed, removed or moved; print the head")
    export = audit_sub.add_parser("export", help="the records of a date range (UTC days, both included) as CSV")
    export.add_argument("--from", dest="start", type=_day, help="first day, YYYY-MM-DD")
    export.add_argument("--to", dest="end", type=_day, help="last day, YYYY-MM-DD")
    export.add_argument("--out", type=Path, help="write to this file (otherwise to stdout)")
    users = sub.add_parser("users", help="who may sign in (ASSISTANT_AUTH__MODE=password): add, remove, "
                           "list, passwd")
    users_sub = users.add_subparsers(dest="action", required=True)
    for action, text in (("add", "add a user (asks for the password)"), ("passwd", "set a user's password"),
                         ("remove", "remove a user")):
        one = users_sub.add_parser(action, help=text)
        one.add_argument("name")
        if action != "remove":
            one.add_argument("--password-stdin", action="store_true",
                             help="read the password from the first line of standard input (for scripts)")
        if action == "add":
            one.add_argument("--admin", action="store_true", help="may manage the shared library")
    users_sub.add_parser("list", help="list the users")
    remove = users_sub.choices["remove"]
    remove.add_argument("--purge", action="store_true", help="also delete everything of theirs: knowledge "
                        "bases, conversations, images (no trace left)")
    purge = sub.add_parser(
        "purge", help="retention: delete every user's conversations and documents older than DAYS",
        description="Delete, in every user's workspace (and the local user's), the conversations last changed "
        "more than DAYS days ago and the documents ingested more than DAYS days ago, leaving no trace (their "
        "images, chunks, vectors and thumbnails go too). The shared library is left alone unless "
        "--include-library is given. Safe beside the running app: a knowledge base the app holds open is "
        "skipped and named (exit status 1); run the purge again while the app is stopped. Prints counts per "
        "user and writes a 'purge' record (the ids deleted) into the audit log when it is on.")
    purge.add_argument("--older-than", metavar="DAYS", dest="days", type=_days, required=True,
                       help="age in days (a positive number; 0.5 is twelve hours) of the last activity: a "
                       "conversation's last turn, a document's ingest")
    purge.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    purge.add_argument("--include-library", action="store_true",
                       help="also delete old documents of the shared library (left alone without it)")
    kbs = sub.add_parser("kbs", help="the user's knowledge bases: list, create, rename, delete")
    kbs_sub = kbs.add_subparsers(dest="action", required=True)
    kbs_sub.add_parser("list", help="list them")
    kbs_sub.add_parser("create", help="a new, empty one").add_argument("title")
    rename = kbs_sub.add_parser("rename", help="give one another name")
    rename.add_argument("kb", metavar="KB", help="name or id")
    rename.add_argument("title")
    kbs_sub.add_parser("delete", help="delete one and all its documents (no trace left)").add_argument(
        "kb", metavar="KB", help="name or id")
    return p


_UNBUILT = object()


def _operator() -> str:
    """Who runs the command, as the audit log names them."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no name for this uid (a bare container)
        return f"cli:uid-{os.getuid()}"


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    args = parser().parse_args(argv)
    settings = settings or settings_or_exit()
    from assistant.composition import configure_environment
    from assistant.lifecycle import stop_on_sigterm

    configure_environment(settings)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    stop_on_sigterm()  # a stopped ingest closes the knowledge base as Ctrl-C does
    session = Session(settings, user=args.user, kb=args.kb)
    try:
        return COMMANDS[args.command](args, session)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return 130
    finally:
        session.close()


class Session:
    """Builds only what a command needs, and closes all of it when the command ends (threads joined,
    the knowledge base closed cleanly)."""

    def __init__(self, settings: Settings, *, user: str | None = None, kb: str | None = None):
        self.settings = settings
        self.user = user
        self.kb_name = kb
        self.built: list = []
        self.audit = _UNBUILT

    @property
    def catalogue(self):
        """The user's list of knowledge bases."""
        from assistant.shelf import Catalogue
        from assistant.workspaces import workspace_dir

        return Catalogue(workspace_dir(self.settings.data_dir, self.user))

    @property
    def kb(self) -> str:
        """The knowledge base ``--kb`` names (its id)."""
        return self.catalogue.resolve(self.kb_name)

    def knowledge(self, *, write: bool, kb: str | None = None):
        """Writes take the knowledge base (waiting their turn behind another process's write when it is
        shared); reads open it beside the app if the app has it."""
        from assistant.composition import build_knowledge

        return self._keep(build_knowledge(self.settings, write=write, user=self.user, kb=kb or self.kb))

    def pipeline(self, *, knowledge: bool):
        from assistant.composition import build_pipeline

        return self._keep(build_pipeline(self.settings, knowledge=knowledge, write=False, user=self.user,
                                         kb=self.kb))

    def _keep(self, component):
        self.built.append(component)
        return component

    def record(self, action: str, **details) -> None:
        """An administrator's change into the audit log, when it is on (``AuditLog.record``): the user is
        whoever runs the command, ``cli:<account>``."""
        from assistant.composition import build_audit

        if self.audit is _UNBUILT:
            self.audit = build_audit(self.settings)
        if self.audit is not None:
            self.audit.record(_operator(), action, **details)

    @contextlib.contextmanager
    def audited(self, action: str, **details):
        """Record ``action`` once the block is done (``outcome`` failed when it raised); the block may add
        ``documents``, ``count`` and more ``details`` to the dict it is given. ``details``: ids and flags, never content."""
        found: dict = {}
        try:
            yield found
        except BaseException:
            self.record(action, outcome="failed", details={**details, **found.pop("details", {})}, **found)
            raise
        self.record(action, details={**details, **found.pop("details", {})}, **found)

    def close(self) -> None:
        from assistant.lifecycle import close_all

        close_all(self.built)


def cmd_ingest(args, session: Session) -> int:
    def progress(fraction: float, stage: str) -> None:
        print(f"[{fraction:4.0%}] {stage}", file=sys.stderr, flush=True)

    from retrieval.errors import without_name

    with session.audited("ingest", **_where(session)) as found:
        reports = session.knowledge(write=True).ingest(args.paths, progress=progress)
        found.update(documents=[r.doc_id for r in reports if r.ok and r.doc_id], count=len(reports))
    for r in reports:  # an error names its file, and the line names it already
        detail = without_name(r.error or "", r.source) if r.status == "failed" else f"{r.chunks} chunks"
        print(f"{r.status:9} {r.source}: {detail}")
        if r.notice:  # what de-identification removed from a DICOM file
            print(f"          {r.notice}")
    ok = sum(r.ok for r in reports)
    print(f"{ok} of {len(reports)} files ingested or already present")
    return 0 if ok else 1


def cmd_search(args, session: Session) -> int:
    if not args.text and not args.image:
        print("error: give search text, --image, or both", file=sys.stderr)
        return 2
    hits = session.knowledge(write=False).search(args.text, args.image, k=args.k or session.settings.retrieval.k)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        return 0
    for i, h in enumerate(hits, 1):
        snippet = " ".join(h.chunk.text.split())[:100]
        print(f"[{i}] {h.score:.3f} {h.chunk.kind:5} {h.source} ({h.chunk.locator}) {snippet}")
    return 0


def cmd_ask(args, session: Session) -> int:
    from assistant.pipeline import Completed, Retrieved, Token
    from assistant.types import ChatRequest, GenerationParams

    settings = session.settings
    pipeline = session.pipeline(knowledge=not args.no_knowledge)
    params = GenerationParams(settings.model.max_new_tokens, settings.model.temperature)
    request = ChatRequest(args.text, tuple(args.image), params=params, use_knowledge=not args.no_knowledge)
    sources, notice = (), None
    for event in pipeline.answer(request):
        if isinstance(event, Retrieved):
            sources, notice = event.sources, event.notice
            if event.notice and not args.json:
                print(f"note: {event.notice}", file=sys.stderr)
        elif isinstance(event, Token) and not args.json:
            print(event.text, end="", flush=True)
        elif isinstance(event, Completed):
            _answered(event, sources, notice, as_json=args.json)
    return 0


def _answered(done, sources, notice: str | None, *, as_json: bool) -> None:
    """The end of an answer: its sources (cited ones marked) and its agreement with the images."""
    agreement = done.consistency.to_dict() if done.consistency is not None else None
    if as_json:
        print(json.dumps({"answer": done.text, "cited": list(done.cited), "abstained": done.abstained,
                          "notice": notice, "sources": [{"number": s.number, **s.hit.to_dict(),
                                                         "cited": s.number in done.cited} for s in sources],
                          "consistency": agreement}, ensure_ascii=False, indent=2))
        return
    print()
    for s in sources:
        mark = "*" if s.number in done.cited else " "
        print(f"{mark}[{s.number}] {s.name} ({s.locator}) score {s.score:.3f}")
    if agreement and agreement["score"] is not None:
        flag = ": this answer may not match the image" if agreement["flagged"] else ""
        print(f"image agreement {agreement['score']:.2f}{flag}")


def cmd_docs(args, session: Session) -> int:
    docs = session.knowledge(write=False).documents()
    for d in docs:
        print(f"{d.doc_id}  {d.kind:5}  {d.chunks:4} chunks  {d.source}")
    print(f"{len(docs)} documents")
    return 0


def cmd_delete(args, session: Session) -> int:
    with session.audited("delete", **_where(session)) as found:
        info = session.knowledge(write=True).delete(args.doc_id)
        found["documents"] = [info.doc_id]
    print(f"deleted {info.source} ({info.chunks} chunks)")
    return 0


def cmd_download(args, session: Session) -> int:
    """Fetch models ahead of time, for machines that will run without network (air-gapped sites): the
    model (a preset's, the configured one, or both defaults) and the embedders. Sizes first, then terms."""
    settings = session.settings
    from huggingface_hub import snapshot_download

    from assistant.composition import chosen_checkpoint, default_checkpoint

    if args.preset:
        chosen = presets.preset(args.preset)
        checkpoints = [chosen.checkpoint]
    elif settings.model.checkpoint or settings.model.preset:
        checkpoints = [chosen_checkpoint(settings, cuda_available=True)]
    else:
        checkpoints = [default_checkpoint(True), default_checkpoint(False)]
    embedders = [e for e in (settings.retrieval.embedder, settings.retrieval.text_embedder) if e]
    wanted = [c for c in [*checkpoints, *embedders] if not Path(c).expanduser().is_dir()]
    for local in [c for c in [*checkpoints, *embedders] if c not in wanted]:
        print(f"{local}: local folder, nothing to download")
    if not wanted:
        return 0
    _check_hub()
    sizes = {c: _download_size(c) for c in wanted}
    for checkpoint, size in sizes.items():
        known = presets.for_checkpoint(checkpoint)
        licence = f" ({known.licence})" if known else ""
        print(f"{checkpoint}{licence}: {_gigabytes(size)}")
    print(f"total: {_gigabytes(sum(sizes.values()))}", flush=True)
    for checkpoint in wanted:
        known = presets.for_checkpoint(checkpoint)
        if known is not None and known.terms:
            print(f"\n{known.terms}\n", flush=True)
        try:
            print(f"{checkpoint}: {snapshot_download(checkpoint)}", flush=True)
        except Exception as exc:  # network and hub errors come in many types; name the model and stop
            raise AssistantError(f"Could not download '{checkpoint}': {exc}") from exc
    return 0


def _download_size(checkpoint: str) -> int:
    """The bytes of a hub model's files (what ``snapshot_download`` fetches)."""
    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(checkpoint, files_metadata=True)
    except Exception as exc:  # noqa: BLE001  no such model, a gated one, the hub's error
        raise AssistantError(f"Could not look up '{checkpoint}' on the hub: {exc}") from exc
    return sum(s.size or 0 for s in info.siblings or [])


def _gigabytes(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"


def _check_hub() -> None:
    """Downloads need the hub: say at once when it cannot be reached, not after minutes of retries."""
    from huggingface_hub import constants

    from retrieval.hub import offline, unreachable

    if offline():
        raise AssistantError("Downloads are off: offline mode is on (ASSISTANT_OFFLINE, HF_HUB_OFFLINE or "
                             "TRANSFORMERS_OFFLINE). Run `python -m assistant download` without it.")
    if problem := unreachable(constants.ENDPOINT.rstrip("/")):
        raise AssistantError(f"Cannot download: {problem}. Run `python -m assistant download` on a machine "
                             "with network, then copy its Hugging Face cache (~/.cache/huggingface) here.")


def _day(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a day as YYYY-MM-DD") from None


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of days") from None
    if not math.isfinite(days) or days <= 0:
        raise argparse.ArgumentTypeError(f"'{text}': give a positive number of days") from None
    return days


def cmd_purge(args, session: Session) -> int:
    """Retention (``assistant.retention``): counts per workspace, ids into the audit log, never titles."""
    from datetime import datetime, timezone

    from assistant.composition import knowledge_base_opener
    from assistant.retention import cutoff_for, purge

    if session.user or session.kb_name:
        raise InputError("purge covers every user's workspace: give it no --user or --kb")
    settings = session.settings
    cutoff = cutoff_for(args.days)
    results: list = []
    outcome = "failed"
    try:
        purge(settings.data_dir, cutoff, knowledge_base_opener(settings), library=args.include_library,
              dry_run=args.dry_run, results=results)
        outcome = "partial" if any(r.skipped for r in results) else "ok"
    finally:
        if not args.dry_run:  # a dry run changes nothing
            session.record("purge", outcome=outcome, documents=[d for r in results for d in r.documents],
                           count=sum(len(r.conversations) + len(r.documents) for r in results),
                           details={"days": args.days, "cutoff": datetime.fromtimestamp(cutoff, timezone.utc)
                                    .isoformat(timespec="seconds"), "library": args.include_library,
                                    "workspaces": {r.workspace: r.to_dict() for r in results
                                                   if r.conversations or r.documents or r.skipped}})
    _purge_summary(results, args.days, dry_run=args.dry_run)
    return 1 if outcome == "partial" else 0


def _purge_summary(results: list, days: float, *, dry_run: bool) -> None:
    verb = "would delete" if dry_run else "deleted"
    print(f"{'dry run: nothing deleted; ' if dry_run else ''}last activity over {days:g} days ago:")
    for r in results:
        if r.conversations or r.documents:
            print(f"  {r.workspace}: {verb} {len(r.conversations)} conversations, {len(r.documents)} documents")
        for kb, why in r.skipped.items():
            print(f"  {r.workspace}: knowledge base {kb} skipped: {why}", file=sys.stderr)
    conversations = sum(len(r.conversations) for r in results)
    documents = sum(len(r.documents) for r in results)
    print(f"total: {verb} {conversations} conversations, {documents} documents")


def cmd_audit(args, session: Session) -> int:
    """``verify``: exit 0 when the chain is intact (its head printed, to be noted elsewhere), 1 naming the
    first bad line; ``export``: CSV."""
    from assistant.audit import export_csv, verify

    path = session.settings.audit_file
    if not path.exists():
        raise InputError(f"There is no audit log in {path.parent} (is ASSISTANT_AUDIT__ENABLED set for the app?)")
    if args.action == "verify":
        result = verify(path)
        if not result.ok:
            print(f"audit log NOT intact: {result.problem}; the {result.records} records before it are intact",
                  file=sys.stderr)
            return 1
        print(f"audit log intact: {result.records} records; head {result.head}")
        return 0
    text, rows = export_csv(path, args.start, args.end)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"{rows} records written to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_calibrate(args, session: Session) -> int:
    from assistant.evaluation import calibrate, calibration_table, evaluate

    proposal = calibrate(evaluate(args.file, session.settings))
    print(json.dumps(proposal, ensure_ascii=False, indent=2) if args.json else calibration_table(proposal))
    return 0


def cmd_eval(args, session: Session) -> int:
    from assistant.evaluation import evaluate, table

    model = None
    if args.answers:
        from assistant.composition import build_model

        model = build_model(session.settings).start()
    try:
        result = evaluate(args.file, session.settings, model=model)
    finally:
        if model is not None:
            model.close()
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else table(result))
    return 0


def cmd_users(args, session: Session) -> int:
    from assistant.accounts import UsersFile

    users = UsersFile(session.settings.users_file)
    if args.action == "list":
        accounts = users.accounts()
        for a in accounts:
            print(f"{a.name}{'  (admin)' if a.admin else ''}")
        print(f"{len(accounts)} users in {users.path.name}")
        return 0
    flags = {"admin": args.admin} if args.action == "add" else {"purge": args.purge} if args.action == "remove" else {}
    with session.audited(f"user-{args.action}", name=args.name.strip().lower(), **flags):  # never the password
        return _change_user(args, session, users)


def _change_user(args, session: Session, users) -> int:
    from assistant.workspaces import knowledge_dir

    folder = knowledge_dir(session.settings.data_dir, args.name).parent
    if args.action == "remove":
        try:
            users.remove(args.name)
            print(f"removed {folder.name}; they can no longer sign in, and a session they have open ends")
        except InputError:
            if not (args.purge and folder.exists()):  # purging what an earlier remove left
                raise
        if args.purge:
            _workspaces(session).remove(folder.name)
            print(f"deleted everything of theirs ({folder})")
        elif folder.exists():
            print(f"their documents remain in {folder}: `users remove {folder.name} --purge` deletes them (the "
                  "name cannot be given to someone else while they exist)")
        return 0
    if args.action == "add" and folder.exists():
        raise InputError(f"{folder} holds the documents of an earlier user '{folder.name}': delete it first, "
                         "or choose another name (a new user must not inherit them)")
    password = _new_password(args.password_stdin)
    if args.action == "add":
        account = users.add(args.name, password, admin=args.admin)
        print(f"added {account.name}{' (admin)' if account.admin else ''}")
    else:
        users.set_password(args.name, password)
        print(f"password changed for {args.name.strip().lower()}")
    return 0


def _where(session: Session, *, with_kb: bool = True) -> dict:
    """Whose knowledge base a command changes, for its audit record: the workspace, and the knowledge base's
    id unless the command finds it itself."""
    from assistant.accounts import normalise_name

    where = {"workspace": normalise_name(session.user) if session.user else "local"}
    return {**where, "kb": session.kb} if with_kb else where


def _workspaces(session: Session):
    """Workspaces without a model: enough to delete one with every knowledge base of theirs (and their
    collections where they are in a Chroma server)."""
    from assistant.composition import build_knowledge
    from assistant.workspaces import Workspaces

    def open_knowledge(user, kb):
        return session._keep(build_knowledge(session.settings, user=user, kb=kb))

    return Workspaces(None, lambda user, kb="default": open_knowledge(user, kb), signed_in=True,
                      data_dir=session.settings.data_dir)


def cmd_kbs(args, session: Session) -> int:
    from assistant.shelf import SHARED_TITLE
    from assistant.workspaces import knowledge_dir

    catalogue = session.catalogue
    if args.action != "list":  # the ids, never the titles
        with session.audited(f"kb-{args.action}", **_where(session, with_kb=False)) as found:
            return _change_kbs(args, session, catalogue, found)
    used = catalogue.used()
    bases = catalogue.bases()
    for kb_id, title in bases:
        print(f"{kb_id:12}  {title}{'' if used is None or kb_id in used else '  (not searched by the chat)'}")
    if knowledge_dir(session.settings.data_dir, None, "shared").exists():
        print(f"{'shared':12}  {SHARED_TITLE}  (every signed-in user reads it)")
    print(f"{len(bases)} knowledge bases")
    return 0


def _change_kbs(args, session: Session, catalogue, found: dict) -> int:
    if args.action == "create":
        kb_id = catalogue.create(args.title)
        found["details"] = {"kb": kb_id}
        print(f"created {kb_id}: {catalogue.title(kb_id)}")
    elif args.action == "rename":
        kb_id = catalogue.resolve(args.kb)
        found["details"] = {"kb": kb_id}
        print(f"renamed {kb_id}: {catalogue.rename(kb_id, args.title)}")
    else:
        from assistant.shelf import delete_base

        kb_id = catalogue.resolve(args.kb)
        found["details"] = {"kb": kb_id}
        title = delete_base(catalogue, kb_id, lambda: session.knowledge(write=True, kb=kb_id))
        print(f"deleted {title} and its documents")
    return 0


def _new_password(from_stdin: bool) -> str:
    """A new password: the first line of stdin for scripts, else typed twice without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise InputError("The two passwords differ; nothing was changed")
    return first


COMMANDS = {"ingest": cmd_ingest, "search": cmd_search, "ask": cmd_ask, "docs": cmd_docs,
            "delete": cmd_delete, "download": cmd_download, "eval": cmd_eval, "calibrate": cmd_calibrate,
            "users": cmd_users, "kbs": cmd_kbs, "audit": cmd_audit, "purge": cmd_purge}
