"""Reviews to upload on the compose stack, and the proof that each reached OneFile once.

tests/deploy/test_compose_up.py adds PICSWeb reviews that rule 5 uploads (as
tests/airflow/world.py's ``AirflowWorld.add_review_to_upload`` does: a template review's
trainee, type and officer, with nothing recorded yet) before a run it disturbs (the scheduler
restarted, the workers killed during ``push_reviews``), then checks both systems after it:
each review linked in PICSWeb to a OneFile review no other PICSWeb review links to, and that
OneFile review the only one of its learner at its time, read from the simulator container
through its published port, as any OneFile client reads it.
"""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import requests

from tests.deploy.compose_stack import Stack, log

UK = ZoneInfo("Europe/London")


def add_reviews_to_upload(stack: Stack, count: int, day: dt.date, at: str) -> list[int]:
    """``count`` new PICSWeb reviews on ``day`` at ``at`` (HH:MM), one per trainee, each
    like a review the sync already uploaded (so its trainee is linked, in a synced
    organisation, with an officer on OneFile): their ``review_id``s."""
    rows = stack.sql(
        "INSERT INTO review (trainee_id, review_type, scheduled_date, start_time, officer_id) "
        "SELECT * FROM ("
        f" SELECT DISTINCT ON (r.trainee_id) r.trainee_id, r.review_type, DATE '{day}',"
        f"  TIME '{at}', r.officer_id"
        " FROM review r JOIN sync_outbox o ON o.kind = 'review_create' AND o.state = 'sent'"
        "  AND o.target_id = r.review_id"
        " WHERE r.trainee_id NOT IN (SELECT trainee_id FROM review"
        f"  WHERE scheduled_date = DATE '{day}' AND start_time = TIME '{at}')"
        f" ORDER BY r.trainee_id, r.review_id) AS t ORDER BY trainee_id LIMIT {count} "
        "RETURNING review_id",
        database="picsweb",
    )
    ids = [int(row[0]) for row in rows if row[0].isdigit()]
    assert len(ids) == count, f"{len(ids)} reviews added, not {count}: {rows}"
    log(f"PICSWeb reviews to upload on {day} at {at}: {ids}")
    return ids


def wait_for_creates_in_flight(stack: Stack, run_id: str, timeout: float = 900) -> list[int]:
    """Until a review create of ``run_id`` is in flight, its outcome unknown to PICSWeb: its
    VisitID recorded (the sync writes it just before the Review call) and no ReviewID yet.
    Polled inside the PICSWeb container every 0.2 s, so the moment is not missed: the
    PICSWeb review IDs of those creates."""
    query = (
        "SELECT string_agg(target_id::text, ',') FROM sync_outbox "
        f"WHERE run_id = '{run_id}' AND kind = 'review_create' "
        "AND visit_id IS NOT NULL AND result_id IS NULL"
    )
    script = (
        f'end=$((SECONDS + {int(timeout)})); while [ "$SECONDS" -lt "$end" ]; do '
        'found=$(psql -U postgres -d picsweb -At -c "$Q" 2>/dev/null); '
        'if [ -n "$found" ]; then echo "$found"; exit 0; fi; sleep 0.2; done; exit 1'
    )
    done = stack.dc(
        *("exec", "-T", "-e", f"Q={query}", "picsweb-postgres", "bash", "-c", script),
        check=False,
        timeout=timeout + 120,
    )
    assert done.returncode == 0, f"no review create of {run_id} seen in flight: {done.stderr}"
    return [int(x) for x in done.stdout.strip().split(",")]


class OneFile:
    """The simulator container's API on its published port, with the stack's customer token."""

    def __init__(self, stack: Stack):
        self.url = f"http://127.0.0.1:{stack.env['ONEFILE_SIMULATOR_HOST_PORT']}/api/v2.1"
        answer = self._send(
            "POST",
            "/Authentication",
            headers={"X-CustomerToken": stack.env["ONEFILE_CUSTOMER_TOKEN"]},
        )
        self.headers = {"X-TokenID": answer.text.strip().strip('"')}

    def _send(self, method: str, path: str, **kwargs) -> requests.Response:
        for _ in range(20):  # the sync may be using the customer's 300 calls a minute
            answer = requests.request(method, self.url + path, timeout=120, **kwargs)
            if answer.status_code != 429:
                assert answer.status_code in (200, 204), (path, answer.status_code, answer.text)
                return answer
            time.sleep(float(answer.headers.get("Retry-After") or 5))
        raise AssertionError(f"{path}: still rate-limited")

    def get(self, entity: str, row_id: int) -> dict:
        return self._send("GET", f"/{entity}/{row_id}", headers=self.headers).json()

    def reviews_of(self, learner_id: int, organisation_id: int, around: dt.datetime) -> list:
        """The learner's reviews scheduled within a minute of ``around`` (UTC)."""
        minute = dt.timedelta(minutes=1)
        body = {
            "OrganisationID": organisation_id,
            "LearnerID": learner_id,
            "DateFrom": (around - minute).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "DateTo": (around + minute).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        rows, page = [], 1
        while True:
            answer = self._send(
                "POST", f"/Review/Search/{page}/100", json=body, headers=self.headers
            )
            found = answer.json() if answer.status_code == 200 and answer.content else []
            rows += [r for r in found if isinstance(r, dict) and r.get("LearnerID") == learner_id]
            if len(found) < 100:
                return rows
            page += 1


def assert_each_uploaded_once(stack: Stack, review_ids: list[int]) -> dict[int, int]:
    """Each PICSWeb review linked to a OneFile review that no other PICSWeb review links to,
    and that the only OneFile review of its learner at its time: {review_id: OneFile ID}."""
    rows = stack.sql(
        "SELECT r.review_id, t.onefile_learner_id, r.scheduled_date, r.start_time, "
        "r.onefile_system_id, (SELECT count(*) FROM review o "
        "WHERE o.onefile_system_id = r.onefile_system_id) "
        "FROM review r JOIN trainee t ON t.trainee_id = r.trainee_id "
        f"WHERE r.review_id IN ({', '.join(map(str, review_ids))}) ORDER BY r.review_id",
        database="picsweb",
    )
    assert [int(r[0]) for r in rows] == sorted(review_ids), rows
    onefile = OneFile(stack)
    linked = {}
    for review_id, learner, day, start, system_id, links in rows:
        assert system_id, f"PICSWeb review {review_id} was not uploaded: {rows}"
        assert links == "1", f"OneFile review {system_id} linked {links} times in PICSWeb"
        learner_id = int(learner)
        when = dt.datetime.combine(dt.date.fromisoformat(day), dt.time.fromisoformat(start), UK)
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
        organisation = onefile.get("User", learner_id)["OrganisationID"]
        copies = onefile.reviews_of(learner_id, organisation, when)
        assert len(copies) == 1, f"PICSWeb review {review_id}: {len(copies)} in OneFile: {copies}"
        review = onefile.get("Review", int(system_id))
        assert review["LearnerID"] == learner_id, review
        assert review["ScheduledFor"].startswith(when.strftime("%Y-%m-%dT%H:%M")), (when, review)
        linked[int(review_id)] = int(system_id)
    log(f"each review once in OneFile and linked once in PICSWeb: {linked}")
    return linked
