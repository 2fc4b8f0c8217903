"""Rater sign-in and assignment: tokens stored only as hashes, identity from the token, items only for
the rater they were served to, opaque item keys, and the `ratings invite|viewer` commands' bad input."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import pytest

from harness.cli import main
from harness.ratings import RatingsDB, RatingsError, plan_campaign
from harness.ratings.access import hash_token, invitation_link
from harness.ratings.errors import ItemNotAssignedError, SignInError
from harness.ratings.schema import SCHEMA_VERSION
from harness.store import ResultStore
from tests.ratings.test_ratings_support import simple_campaign, two_run_store


@pytest.fixture
def db(tmp_path: Path) -> RatingsDB:
    ratings = RatingsDB(tmp_path / "r.sqlite")
    simple_campaign(ratings, "duel", 6, overlap=1, mode="pairwise")
    return ratings


def test_only_the_token_hash_is_stored(db: RatingsDB) -> None:
    invitation = db.invite("duel", "  Ann ")
    token = invitation.token
    assert len(token) == 43 and re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert invitation.identity.token_hash == hashlib.sha256(token.encode()).hexdigest() == hash_token(token)
    db.close()
    stored = b"".join(path.read_bytes() for path in db.path.parent.glob("r.sqlite*"))
    assert token.encode() not in stored
    with sqlite3.connect(db.path) as connection:
        rows = connection.execute("SELECT token_hash, role, campaign_id, name FROM tokens").fetchall()
    assert rows == [(hash_token(token), "rater", "duel", "ann")]
    assert invitation.link("http://127.0.0.1:8501/", "pairwise") == (
        f"http://127.0.0.1:8501/pairwise?token={token}"
    )
    assert invitation_link("https://x", "", "a-b") == "https://x/?token=a-b"


def test_the_token_says_who_rates(db: RatingsDB) -> None:
    ann, bob = db.invite("duel", "ann"), db.invite("duel", "bob")
    assert (db.identify(ann.token).name, db.identify(bob.token).name) == ("ann", "bob")
    assert db.identify(f"  {ann.token}\n").campaign_id == "duel"  # pasted with whitespace
    assert db.current(ann.identity) == ann.identity
    again = db.invite("duel", "ann")  # a new invitation voids the old token
    assert again.token != ann.token and db.identify(again.token).name == "ann"
    with pytest.raises(SignInError, match="not valid"):
        db.identify(ann.token)
    with pytest.raises(SignInError, match="not valid"):
        db.current(ann.identity)
    viewer = db.add_viewer("boss")
    with pytest.raises(SignInError, match="rater token is not valid"):
        db.identify(viewer.token)  # a viewer token does not rate ...
    with pytest.raises(SignInError, match="viewer token is not valid"):
        db.identify(bob.token, "viewer")  # ... and a rater token does not open the results
    assert db.identify(viewer.token, "viewer").name == "boss"


@pytest.mark.parametrize(
    "token", ["", "short", "x" * 200, "a" * 42 + "!", "a" * 40 + "\x00" + "a" * 2, "ä" * 43]
)
def test_malformed_tokens_are_refused_without_a_lookup(db: RatingsDB, token: str) -> None:
    with pytest.raises(SignInError, match="not a sign-in token"):
        db.identify(token)


def test_invitations_check_campaign_rater_and_roster(db: RatingsDB) -> None:
    with pytest.raises(RatingsError, match="no campaign 'nope'"):
        db.invite("nope", "ann")
    with pytest.raises(RatingsError, match="must not be empty"):
        db.invite("duel", "   ")
    with pytest.raises(RatingsError, match="at most 64"):
        db.invite("duel", "x" * 65)
    with pytest.raises(RatingsError, match="viewer name"):
        db.add_viewer("\x1b[31m")
    with sqlite3.connect(db.path) as connection:
        connection.execute("UPDATE campaigns SET roster = '[\"ann\"]'")
    with pytest.raises(RatingsError, match="not on the rater list"):
        db.invite("duel", "mallory")
    with pytest.raises(SignInError, match="no one has been invited"):
        RatingsDB(db.path.parent / "none.sqlite").identify("a" * 43)


def test_a_rater_cannot_rate_or_skip_an_item_not_assigned_to_them(db: RatingsDB) -> None:
    ann = db.identify(db.invite("duel", "ann").token).name
    bob = db.identify(db.invite("duel", "bob").token).name
    served = db.next_item("duel", ann)
    assert served is not None
    item_id, order = served.item.item_id, served.display_order
    vote = {"preference": "A"}
    with pytest.raises(ItemNotAssignedError, match=f"item '{item_id}' .* not assigned to rater 'bob'"):
        db.submit("duel", bob, item_id, vote, display_order=order)
    with pytest.raises(ItemNotAssignedError):
        db.skip("duel", bob, item_id)
    never_served = next(item.item_id for item in db.items("duel") if item.item_id != item_id)
    with pytest.raises(ItemNotAssignedError):
        db.submit("duel", ann, never_served, vote, display_order=order)  # ann's, but not served yet
    assert db.rating_rows("duel")[2] == [] and db.rater_progress("duel", bob).skipped == 0

    assert db.submit("duel", ann, item_id, vote, display_order=order).saved
    # An item served to bob stays his even when others fill its overlap meanwhile (a slow rater).
    for_bob = db.next_item("duel", bob)
    assert for_bob is not None and for_bob.item.item_id != item_id  # ann's item is full (overlap 1)
    carl = db.register_rater("duel", "carl")
    with pytest.raises(ItemNotAssignedError):
        db.submit("duel", carl, for_bob.item.item_id, vote, display_order=for_bob.display_order)
    assert db.submit("duel", bob, for_bob.item.item_id, vote, display_order=for_bob.display_order).saved


def test_item_keys_are_opaque_stable_and_per_rater(db: RatingsDB) -> None:
    ann, bob = db.register_rater("duel", "ann"), db.register_rater("duel", "bob")
    first, again = db.next_item("duel", ann), db.next_item("duel", ann)
    assert first is not None and first == again  # a rerun shows the same key
    assert re.fullmatch(r"[0-9a-f]{16}", first.key)
    assert first.item.item_id not in first.key and "run" not in first.key
    keys = {db.next_item("duel", rater).key for rater in (ann, bob)}  # type: ignore[union-attr]
    assert len(keys) == 2
    other = RatingsDB(db.path.parent / "other.sqlite")
    simple_campaign(other, "duel", 6, overlap=1, mode="pairwise")
    other_first = other.next_item("duel", other.register_rater("duel", "ann"))
    assert other_first is not None
    # Keyed by each database's own secret: knowing an item id does not give its key.
    if other_first.item.item_id == first.item.item_id:
        assert other_first.key != first.key


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    db = RatingsDB(tmp_path / "r.sqlite")
    simple_campaign(db, "c", 2, mode="pairwise")
    rater = db.register_rater("c", "ann")
    served = db.next_item("c", rater)
    assert served is not None
    db.submit("c", rater, served.item.item_id, {"preference": "tie"}, display_order=served.display_order)
    db.close()
    with sqlite3.connect(db.path) as connection:  # as version 1 wrote it
        connection.execute("DROP TABLE tokens")
        connection.execute("DROP TABLE assignments")
        connection.execute("DELETE FROM meta WHERE key = 'item_key_secret'")
        connection.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    reopened = RatingsDB(db.path)
    assert len(reopened.rating_rows("c")[2]) == 1
    assert reopened.identify(reopened.invite("c", "bob").token).name == "bob"
    with sqlite3.connect(db.path) as connection:
        version = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert version == str(SCHEMA_VERSION) == "2"


# -- the commands ------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    good, bad = two_run_store(root, documents=3)
    plan = plan_campaign(ResultStore(root), campaign_id="duel", mode="pairwise", runs=[good, bad])
    RatingsDB.for_store(root).create_campaign(plan.campaign, plan.items)
    return root


def test_invite_command_prints_a_token_that_signs_in(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ratings", "invite", "duel", "Ann", "--store", str(store), "--url", "http://lab:9000"]) == 0
    out = capsys.readouterr().out
    token = re.search(r"sign-in token (\S+)", out)
    assert token is not None
    assert f"link: http://lab:9000/pairwise?token={token.group(1)}" in out
    assert RatingsDB.for_store(store).identify(token.group(1)).name == "ann"
    assert main(["ratings", "viewer", "Boss", "--store", str(store)]) == 0
    viewer = re.search(r"sign-in token (\S+)", capsys.readouterr().out)
    assert viewer is not None
    assert RatingsDB.for_store(store).identify(viewer.group(1), "viewer").name == "Boss"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["invite", "nope", "ann"], "no campaign 'nope'"),
        (["invite", "duel", ""], "rater name must not be empty"),
        (["invite", "duel", "x" * 80], "at most 64"),
        (["invite", "duel", "ann", "--url", "ftp://host"], "--url must be"),
        (["invite", "duel", "ann", "--url", "http://host/?a=1"], "--url must be"),
        (["invite", "duel", "ann", "--db", "{store}/missing.sqlite"], "no ratings database"),
        (["invite", "duel", "ann", "--db", "{store}/runs"], "ratings database"),
        (["viewer", ""], "viewer name"),
        (["viewer", "boss", "--store", "{store}/nothing-here"], "no results store"),
        (["invite", "duel"], "the following arguments are required: rater"),
    ],
)
def test_bad_invitations_exit_2_with_one_line(
    store: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    arguments = [argument.replace("{store}", str(store)) for argument in arguments]
    if "--store" not in arguments:
        arguments += ["--store", str(store)]
    try:
        code = main(["ratings", *arguments])
    except SystemExit as exit_:  # argparse's own usage errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    assert code == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert message in lines[-1] and "Traceback" not in captured.err
    assert not [line for line in lines if not line.startswith(("usage:", " ", "harness"))]
    assert "token" not in captured.out
    with sqlite3.connect(RatingsDB.for_store(store).path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 0
