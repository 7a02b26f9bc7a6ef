"""Run one job: check the runbook's hash, get the group's gMSA ticket, run, stream, report.

The runbook runs as the group's local user in a directory only that job can reach
(``credo.worker.jobfiles``: a private supplementary group per job) holding the script, the
parameters as JSON (CREDO_PARAMETERS: data, never code) and a ccache with a TGT of the group's gMSA
that ends with the job's timeout (KRB5CCNAME); all 0600, all removed when the job ends, and by the
next worker to start if this one is killed. The helper module ``credo.runbook`` is on PYTHONPATH
from one read-only directory per worker. stdout is the output stream, stderr the error stream;
``credo.runbook`` writes the others as JSON lines on the file descriptor named by CREDO_STREAM_FD.

The child is started through util-linux ``setpriv`` (Essential on Debian), which switches to the
job's user and sets the parent-death signal after that switch (prctl(2): a change of credentials
clears it). Doing both in Python would need ``user=``/``preexec_fn``, which make CPython 3.11
``fork()`` the whole worker instead of ``vfork()``: that copy of the page tables was the largest
part of a trivial job's cost.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from credo.agent.client import AgentClient
from credo.automation.identity import IssuedToken, WorkloadIdentity
from credo.automation.jobs import MAX_STREAM_BYTES, Stream
from credo.automation.runbooks import RunbookType
from credo.errors import CredoError, EnvironmentProblem, NotFoundError, NotPermittedError, UnreachableError
from credo.gmsa.credentials import gmsa_keytab
from credo.gmsa.operations import usable_password
from credo.gmsa.runas import (
    SAFE_PATH,
    LocalAccount,
    RunOptions,
    child_environment,
    local_account,
    terminate_group,
)
from credo.gmsa.session import HostSession, SessionSettings
from credo.krb.tgt import (
    MemoryKeytab,
    Ticket,
    acquire_tgt,
    copy_ccache,
    destroy_ccache,
    new_memory_ccache_name,
)
from credo.names import SYSTEM_USERS
from credo.worker.client import ServerClient, backoff
from credo.worker.fence import LeaseFence
from credo.worker.jobfiles import RuntimeDirectory, write_private_file
from credo.worker.tokenfiles import JobTokens, TokenSource, identity_from_json

__all__ = ["JobExecutor", "JobSpec", "Outcome", "claimed_jobs"]

log = logging.getLogger(__name__)
FLUSH_SECONDS = 0.05
# Text per output report; a chunk is at most 128 KiB (OutputSink.write merges up to 64 KiB).
BATCH_CHARACTERS = MAX_STREAM_BYTES
# How long a job may wait for its gMSA credentials while no DC answers (a DC restarting, a
# network blip), at most its own timeout: retried with backoff, each failure in its warning stream.
START_BUDGET_SECONDS = 120.0
RUNBOOK_HELPER = Path(__file__).resolve().parents[1] / "runbook.py"


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    lease_token: int
    attempt: int
    runbook: str
    type: str
    content_hash: str
    parameters: dict[str, Any]
    timeout_seconds: int
    content: bytes | None = None
    identity: WorkloadIdentity | None = None  # the group's cloud identity: the job gets tokens

    @classmethod
    def from_claim(cls, data: dict[str, Any]) -> JobSpec:
        return cls(
            job_id=data["job_id"], lease_token=data["lease_token"], attempt=data["attempt"], runbook=data["runbook"],
            type=data["type"], content_hash=data["content_hash"], parameters=data["parameters"],
            timeout_seconds=data["timeout_seconds"],
            content=base64.b64decode(data["content"]) if data.get("content") else None,
            identity=identity_from_json(data.get("identity")),
        )  # fmt: skip


def claimed_jobs(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The jobs of a claim (or finish) answer, each with the answer's ``identity``: the worker's
    group's workload identity, one for all of them (issue 14, contract point 3)."""
    jobs: list[dict[str, Any]] = answer.get("jobs", [])
    identity = answer.get("identity")
    if identity is not None:
        jobs = [job if "identity" in job else job | {"identity": identity} for job in jobs]
    return jobs


def job_token_source(client: ServerClient, job: JobSpec, gmsa_sid: str | None = None) -> TokenSource:
    """The job's tokens, asked of the server with the job's lease (it refuses any other job's).

    ``gmsa_sid``: the group gMSA's SID when this worker read the account (the server has no
    directory access; the token's ``credo.gmsa_sid`` claim is null without it)."""

    def source(audience: str, runbook_subject: bool) -> IssuedToken:
        # Not ``runbook_subject`` (the group's permission): the server picks the subject from the
        # job's runbook, which may or may not ask for its own, and would refuse a runbook that did not.
        del runbook_subject
        return client.job_token(job.job_id, job.lease_token, audience, gmsa_sid=gmsa_sid)

    return source


class OutputSink:
    """Buffers chunks and sends them in order, at most every FLUSH_SECONDS; learns of stop requests."""

    def __init__(self, client: ServerClient, job: JobSpec, on_stop: Callable[[], None]) -> None:
        self.client, self.job, self.on_stop = client, job, on_stop
        self._pending: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()

    def write(self, stream: Stream, text: str) -> None:
        with self._lock:
            if self._pending and self._pending[-1][0] == stream.value and len(self._pending[-1][1]) < 65536:
                self._pending[-1] = (stream.value, self._pending[-1][1] + text)
            else:
                self._pending.append((stream.value, text))

    def take(self) -> list[tuple[str, str]]:
        """The last batch of chunks not sent yet, for the finish request (which stores them
        first); earlier batches are sent here. Call with ``_send_lock`` held."""
        with self._lock:
            chunks, self._pending = self._pending, []
        batches = _batches(chunks)
        for batch in batches[:-1]:
            if not self._send(batch):
                return []
        return batches[-1] if batches else []

    def flush(self) -> None:
        with self._send_lock:
            with self._lock:
                chunks, self._pending = self._pending, []
            for batch in _batches(chunks):
                if not self._send(batch):
                    return

    def _send(self, chunks: list[tuple[str, str]]) -> bool:
        body = {"lease_token": self.job.lease_token, "chunks": [{"stream": s, "text": t} for s, t in chunks]}
        try:
            answer = self.client.json("POST", f"/jobs/{self.job.job_id}/output", json=body)
        except CredoError as exc:
            log.warning("job %s: output not accepted (%s): stopping it", self.job.job_id, exc)
            self.on_stop()
            return False
        if answer.get("stop"):
            self.on_stop()
        return True


def _batches(chunks: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Chunks in requests of at most BATCH_CHARACTERS of text each, so that a job writing fast
    never meets the server's cap on a report's body (8 MiB, JSON escaping included)."""
    batches: list[list[tuple[str, str]]] = []
    size = BATCH_CHARACTERS
    for chunk in chunks:
        if size + len(chunk[1]) > BATCH_CHARACTERS and (not batches or batches[-1]):
            batches.append([])
            size = 0
        batches[-1].append(chunk)
        size += len(chunk[1])
    return batches


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as the finish report says it."""

    exit_code: int | None = None
    reason: str | None = None
    stopped: bool = False
    handback: bool = False  # not finished: the worker gave it up, to be run again elsewhere


class GmsaTickets:
    """The group gMSA's keys (never its password) in a process-private in-memory keytab, and TGTs
    that end with the job's timeout (plus a margin), not renewable.

    A job's ticket thus dies with the job's time: a ccache a killed worker leaves behind is of
    no use for long. The keys are fetched again (host TGT, LDAP, ETYPE-INFO2) only when the
    password is due to change (``refresh_after``) or the KDC rejects them.

    An AS exchange (RFC 4120 3.1) costs about 13 ms against the lab DC, and its KDC serves them
    one at a time (4 processes asking at once: 41 ms each): one per job would cap a worker at
    well under 100 jobs a second. So a TGT asked for a timeout serves the jobs with that timeout
    that start in the next ``MARGIN - MIN_SLACK`` (2.5 min): each gets a copy whose end is
    between ``now + timeout + MIN_SLACK`` and ``now + timeout + MARGIN``.

    MIN_SLACK: the KDC must still issue service tickets at the job's last second, and Samba's
    KDC refuses a TGS request with a TGT that has less than about two minutes left (measured: a
    TGT of 120 s cannot get ``ldap/``, one of 125 s can).
    """

    MARGIN = timedelta(minutes=5)
    MIN_SLACK = timedelta(seconds=150)

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        # Held for a whole write: copies are quick, and a burst of jobs waits for one AS exchange
        # instead of making one each.
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[MemoryKeytab, str, datetime]] = {}
        self.sids: dict[str, str] = {}  # gMSA name -> objectSid, of the accounts read here
        self._tickets: dict[tuple[str, int], tuple[str, datetime]] = {}

    def write(self, run_as: str, path: Path, timeout_seconds: int) -> None:
        """A TGT for ``run_as`` into a new FILE ccache at ``path``, ending about the job's timeout.

        When a credo agent on this host serves the account, it gives the ticket (one socket round
        trip; the worker then holds no keys of that account); else the worker's own keys do.
        """
        if self._from_agent(run_as, path, timeout_seconds):
            return
        with self._lock:
            now = datetime.now(UTC)
            for key, (ccache, end) in list(self._tickets.items()):
                if end - now < timedelta(seconds=key[1]) + self.MIN_SLACK:
                    destroy_ccache(ccache)
                    del self._tickets[key]
            cached = self._tickets.get((run_as, timeout_seconds))
            if cached is None:
                ccache = new_memory_ccache_name("gmsa")
                ticket = self._acquire(run_as, ccache, int(timeout_seconds + self.MARGIN.total_seconds()))
                cached = self._tickets[(run_as, timeout_seconds)] = (ccache, ticket.end)
            copy_ccache(cached[0], f"FILE:{path}")

    def _from_agent(self, run_as: str, path: Path, timeout_seconds: int) -> bool:
        agent = AgentClient()
        if not agent.available():
            return False
        try:
            agent.write_ccache(run_as, path, lifetime=int(timeout_seconds + self.MARGIN.total_seconds()))
        except NotFoundError:
            path.unlink(missing_ok=True)
            return False  # the agent does not serve this account
        except UnreachableError as exc:
            # A stale socket, or an agent without tickets yet: the worker's own keys do the job.
            log.warning(
                "the credo agent could not give %s's ticket (%s): using this worker's own keys", run_as, exc
            )
            path.unlink(missing_ok=True)
            return False
        except CredoError:
            path.unlink(missing_ok=True)
            raise
        return True

    def _acquire(self, run_as: str, ccache: str, lifetime: int) -> Ticket:
        for attempt in (1, 2):
            keytab, principal = self._current_keys(run_as, refresh=attempt == 2)
            try:
                return acquire_tgt(keytab.name, principal, ccache, lifetime=lifetime, renewable=False)
            except NotPermittedError:
                if attempt == 2:
                    raise
                # The keys may be stale (the password changed early): fetch them again, once.
                log.info("the KDC rejected the cached keys of %s: fetching them again", run_as)
        raise AssertionError("unreachable")

    def _current_keys(self, run_as: str, refresh: bool) -> tuple[MemoryKeytab, str]:
        cached = self._keys.get(run_as)
        if cached is not None and cached[2] > datetime.now(UTC) and not refresh:
            return cached[0], cached[1]
        with HostSession(self.settings) as session:
            password = usable_password(session, run_as)
            realm, dns_domain = session.realm, session.dns_domain
        keytab = gmsa_keytab(password, realm, dns_domain)
        if cached is not None:
            cached[0].close()
        principal = f"{password.account.sam_account_name}@{realm}"
        self._keys[run_as] = (keytab, principal, password.refresh_after)
        self.sids[run_as] = password.account.sid
        return keytab, principal

    def close(self) -> None:
        with self._lock:
            for keytab, _, _ in self._keys.values():
                keytab.close()
            for ccache, _ in self._tickets.values():
                destroy_ccache(ccache)
            self._keys.clear()
            self._tickets.clear()


class RunbookLibrary:
    """A directory (0755, files 0644, owned by the worker's user) with ``credo/runbook.py``.

    One per worker, not one per job: jobs import the helper module from it and cannot change it.
    It lives in the runtime directory, locked like a job's, so a dead worker's is swept too.
    """

    def __init__(self, runtime: RuntimeDirectory) -> None:
        self._stack = contextlib.ExitStack()
        self.path = self._stack.enter_context(runtime.library_directory())
        try:
            package = self.path / "credo"
            package.mkdir(mode=0o755)
            package.chmod(0o755)  # mkdir's mode is filtered by the umask
            uid, gid = os.geteuid(), os.getegid()
            write_private_file(package / "__init__.py", b"", uid, gid, 0o644)
            write_private_file(package / "runbook.py", RUNBOOK_HELPER.read_bytes(), uid, gid, 0o644)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._stack.close()


def launch_command(command: list[str], account: LocalAccount | None) -> list[str]:
    """``command`` behind setpriv: as ``account`` (with its groups) if given; SIGKILL on worker death."""
    setpriv = shutil.which("setpriv", path=SAFE_PATH)
    if setpriv is None:
        raise EnvironmentProblem("setpriv is missing", hint="install util-linux")
    argv = [setpriv, "--pdeathsig", "KILL"]
    if account is not None:
        argv += ["--reuid", str(account.uid), "--regid", str(account.gid)]
        if account.extra_groups:
            # The user's own groups plus the job's private one (setpriv takes numeric gids).
            groups = dict.fromkeys([*os.getgrouplist(account.name, account.gid), *account.extra_groups])
            argv += ["--groups", ",".join(str(g) for g in groups)]
        else:
            argv += ["--init-groups"]
    return [*argv, "--", *command]


class JobExecutor:
    """Runs claimed jobs for one worker registration."""

    def __init__(self, client: ServerClient, settings: SessionSettings, fence: LeaseFence) -> None:
        self.client = client
        self.settings = settings
        self.fence = fence
        self.tickets = GmsaTickets(settings)
        # Opening the runtime directory sweeps what dead workers left (job files, ccaches).
        self.runtime = RuntimeDirectory()
        self.library = RunbookLibrary(self.runtime)
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._stop: set[str] = set()
        # The lease token of each running job: a stop meant for an earlier attempt of the same job
        # (a heartbeat answer that arrives late) must not stop the current one.
        self._tokens: dict[str, int] = {}
        self._handback: dict[str, str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.tickets.close()
        self.library.close()

    def request_stop(self, job_id: str, lease_token: int | None = None) -> None:
        """Stop the job (``lease_token``: only if that is the attempt running now)."""
        with self._lock:
            current = self._tokens.get(job_id)
            if lease_token is not None and current is not None and lease_token != current:
                return
            self._stop.add(job_id)
            child = self._children.get(job_id)
        if child is not None:
            terminate_async(child)

    def hand_back(self, job_id: str, reason: str) -> None:
        """Give the job up: kill it and report it for another attempt (a stopping worker)."""
        with self._lock:
            self._handback[job_id] = reason
            child = self._children.get(job_id)
        if child is not None:
            terminate_async(child)

    def run(self, job: JobSpec, claim: int = 0) -> list[dict[str, Any]]:
        """Run ``job`` to its end and report it; never raises.

        With ``claim``, the report also claims up to that many queued jobs, returned for the
        caller to run: a busy worker takes its next job in the round trip that ends the last one.
        """
        sink = OutputSink(self.client, job, lambda: self.request_stop(job.job_id, job.lease_token))
        with self._lock:
            self._tokens[job.job_id] = job.lease_token
            self._stop.discard(job.job_id)
        outcome = Outcome()
        try:
            outcome = self._run(job, sink)
        except CredoError as exc:
            outcome = Outcome(reason=exc.message)
            sink.write(
                Stream.ERROR, f"credo: {exc.message}\n" + (f"credo: hint: {exc.hint}\n" if exc.hint else "")
            )
        except Exception as exc:  # a bug must not kill the worker loop
            log.exception("job %s failed in the worker", job.job_id)
            outcome = Outcome(reason=f"worker error: {type(exc).__name__}: {exc}")
            sink.write(Stream.ERROR, f"credo: {outcome.reason}\n")
        finally:
            self.fence.end(job.job_id)
            with self._lock:
                self._children.pop(job.job_id, None)
                stopped = outcome.stopped or job.job_id in self._stop
                self._stop.discard(job.job_id)
                self._tokens.pop(job.job_id, None)
                handback = self._handback.pop(job.job_id, None)
        if handback is not None and not outcome.handback and not stopped:
            outcome = Outcome(outcome.exit_code, handback, handback=True)
        with sink._send_lock:
            chunks = [{"stream": stream, "text": text} for stream, text in sink.take()]
        body = {
            "lease_token": job.lease_token,
            "exit_code": outcome.exit_code,
            "reason": outcome.reason,
            "stopped": stopped,
            "handback": outcome.handback,
            "chunks": chunks,
        }
        try:
            answer = self.client.json(
                "POST", f"/jobs/{job.job_id}/finish", json=body, params={"claim": claim}
            )
        except CredoError as exc:
            log.warning("job %s: the server did not take its result: %s", job.job_id, exc)
            return []
        return claimed_jobs(answer)

    def _content(self, job: JobSpec) -> bytes:
        content = job.content if job.content is not None else self._download(job)
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        if digest != job.content_hash:
            raise CredoError(
                f"runbook {job.runbook}: content hash {digest} is not the published {job.content_hash}"
            )
        return content

    def _download(self, job: JobSpec) -> bytes:
        response = self.client.request(
            "GET", f"/jobs/{job.job_id}/content", params={"lease_token": job.lease_token}
        )
        if response.status_code != 200:
            raise CredoError(f"cannot download runbook {job.runbook}: HTTP {response.status_code}")
        content = response.content
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        if digest != job.content_hash:
            raise CredoError(
                f"runbook {job.runbook}: content hash {digest} is not the published {job.content_hash}"
            )
        return content

    def _credentials(self, job: JobSpec, sink: OutputSink, fetch: Callable[[], None]) -> None:
        """Run ``fetch`` (get the gMSA's ticket), retrying while no DC answers, within the job's
        start budget; the DC's error goes to the job's warning stream, and ends the job if the
        budget runs out. Other refusals (not permitted, disabled) are final at once."""
        deadline = time.monotonic() + min(START_BUDGET_SECONDS, job.timeout_seconds)
        attempt = 0
        while True:
            attempt += 1
            try:
                fetch()
                return
            except UnreachableError as exc:
                wait = backoff(attempt, base=0.5, cap=10.0)
                if time.monotonic() + wait > deadline:
                    raise UnreachableError(
                        f"no domain controller gave the gMSA's credentials within the job's start budget "
                        f"({attempt} attempts): {exc.message}",
                        hint=exc.hint,
                    ) from exc
                sink.write(Stream.WARNING, f"credo: {exc.message}; retrying in {wait:.1f} s\n")
                time.sleep(wait)

    def _run(self, job: JobSpec, sink: OutputSink) -> Outcome:
        content = self._content(job)
        registration = self.client.registration
        run_as: str | None = registration.get("run_as")
        local_user: str | None = registration.get("local_user")
        check_job_user(local_user, allow_system=bool(registration.get("allow_system_user")))
        kind = RunbookType(job.type)
        account = local_account(local_user)
        with self.runtime.job_directory(account, private_group=local_user is not None) as files:
            if files.private_gid is not None:
                account = dataclasses.replace(account, extra_groups=(files.private_gid,))
            directory = files.path
            script = files.write(f"runbook{kind.suffix}", content)
            params_file = files.write(
                "parameters.json", json.dumps(job.parameters, ensure_ascii=False).encode()
            )
            ccache: Path | None = None
            if run_as:
                ccache = directory / "krb5cc"
                self._credentials(job, sink, lambda: self.tickets.write(run_as, ccache, job.timeout_seconds))
                files.adopt(ccache.name)  # krb5 created it: owner and 0600 set here, explicitly
            options = RunOptions(
                command=[*kind.interpreter, str(script)], local_user=local_user, timeout=job.timeout_seconds
            )
            env = child_environment(options, account, directory, ccache) | {
                "CREDO_PARAMETERS": str(params_file),
                "CREDO_JOB_ID": job.job_id,
                "CREDO_JOB_ATTEMPT": str(job.attempt),
                "PYTHONPATH": str(self.library.path),
                "PYTHONUNBUFFERED": "1",
            }
            if job.identity is None:
                return self._supervise(job, options, account, env, str(directory), sink)
            # The refresher stops before the directory (and the token files in it) is removed.
            warn = functools.partial(sink.write, Stream.WARNING)
            with JobTokens(
                job.identity,
                files,
                job.job_id,
                job_token_source(self.client, job, self.tickets.sids.get(run_as or "")),
                warn=warn,
            ) as tokens:
                env |= tokens.start()
                return self._supervise(job, options, account, env, str(directory), sink)

    def _supervise(
        self, job: JobSpec, options: RunOptions, account: Any, env: dict[str, str], cwd: str, sink: OutputSink
    ) -> Outcome:
        read_fd, write_fd = os.pipe()
        # The pipe for the structured streams keeps its number in the child (pass_fds).
        env = env | {"CREDO_STREAM_FD": str(write_fd)}
        argv = launch_command(list(options.command), account if options.local_user is not None else None)
        try:
            child = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, pass_fds=(write_fd,), start_new_session=True, close_fds=True,
            )  # fmt: skip
        finally:
            os.close(write_fd)
        self.fence.attach(job.job_id, child.pid)
        with self._lock:
            self._children[job.job_id] = child
            if job.job_id in self._stop or job.job_id in self._handback:
                terminate_async(child)
        assert child.stdout is not None and child.stderr is not None
        pumps = [
            threading.Thread(target=_pump_bytes, args=(child.stdout, Stream.OUTPUT, sink), daemon=True),
            threading.Thread(target=_pump_bytes, args=(child.stderr, Stream.ERROR, sink), daemon=True),
            threading.Thread(target=_pump_streams, args=(os.fdopen(read_fd, "rb"), sink), daemon=True),
        ]
        for pump in pumps:
            pump.start()
        deadline = time.monotonic() + job.timeout_seconds
        timed_out = fenced = False
        while True:
            try:
                child.wait(timeout=FLUSH_SECONDS)  # returns at once when the job ends
                break
            except subprocess.TimeoutExpired:
                pass
            if not fenced and self.fence.expired(job.job_id):
                # The fence process does this too; this check holds even if it is gone.
                fenced = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
                continue
            sink.flush()
            if time.monotonic() > deadline and not timed_out:
                timed_out = True
                terminate_async(child)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, 9)  # nothing of the job survives it
        fenced = fenced or self.fence.expired(job.job_id)
        self.fence.end(job.job_id)
        for pump in pumps:
            pump.join(timeout=5)
        code = child.returncode
        if fenced and not timed_out:
            return Outcome(code, f"killed by its worker: the lease was not renewed for "
                           f"{self.fence.policy.kill_after:.1f} s, so another worker may take the job", handback=True)  # fmt: skip
        if timed_out:
            return Outcome(code, f"timed out after {job.timeout_seconds} s")
        with self._lock:
            stopped = job.job_id in self._stop
            handback = self._handback.get(job.job_id)
        if stopped:
            return Outcome(code, "stopped on request", stopped=True)
        if handback is not None:
            return Outcome(code, handback, handback=True)
        if code < 0:
            return Outcome(code, f"killed by signal {-code}")
        return Outcome(code, None if code == 0 else f"exit code {code}")


def check_job_user(local_user: str | None, *, allow_system: bool) -> None:
    """Refuse to run a job as root or a system account unless its group allows it explicitly.

    System accounts: uid or gid 0, Debian's static base-passwd range (uid < 100), nobody, and the
    privileged names of ``credo.names.SYSTEM_USERS``. With no local user, jobs run as the worker's
    own user, which is usually root: that also needs the group's permission.
    """
    if allow_system:
        return
    try:
        entry = pwd.getpwnam(local_user) if local_user else pwd.getpwuid(os.geteuid())
    except KeyError:
        return  # reported where the account is resolved, with its own hint
    if entry.pw_uid < 100 or entry.pw_gid == 0 or entry.pw_uid == 65534 or entry.pw_name in SYSTEM_USERS:
        raise NotPermittedError(
            f"this worker group would run jobs as {entry.pw_name} (uid {entry.pw_uid}), a system account",
            hint="give the group an unprivileged --local-user (e.g. credo-runner), or allow it explicitly "
            "with --allow-system-user",
        )


def terminate_async(child: subprocess.Popen[bytes]) -> None:
    threading.Thread(target=terminate_group, args=(child,), daemon=True).start()


def _pump_bytes(pipe: IO[bytes], stream: Stream, sink: OutputSink) -> None:
    with pipe:
        while True:
            data = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
            if not data:
                return
            sink.write(stream, data.decode(errors="replace"))


def _pump_streams(pipe: IO[bytes], sink: OutputSink) -> None:
    with pipe:
        for line in pipe:
            try:
                record = json.loads(line)
                stream = Stream(record["stream"])
                text = str(record["text"])
            except (ValueError, KeyError, TypeError):
                continue
            sink.write(stream, text if text.endswith("\n") else text + "\n")
