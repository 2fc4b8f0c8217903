"""Rubric rating page: a prompt and one output, rated 1-5 on each criterion of the campaign's rubric.

Submitting runs in the button's callback, bound to the item the form showed: a rerun (or another tab
rating the same item first) can change what the page would show next, never what was answered.
Widget keys carry the item's opaque `ServedItem.key`, not its id (which names the run).
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from harness.leaderboard.human import (
    flash,
    form_buttons,
    rater_session,
    ratings_db,
    show_flash,
    show_progress,
    submit_answers,
)
from harness.leaderboard.ui import plain
from harness.ratings import Campaign, RatingsDB, ServedItem
from harness.ratings.rubric import SCALE_POINTS, Criterion


def _point_label(criterion: Criterion) -> Callable[[int], str]:
    return lambda point: f"{point} · {plain(criterion.describe(point))}"


def _on_submit(db: RatingsDB, campaign: Campaign, rater: str, served: ServedItem, prefix: str) -> None:
    assert campaign.rubric is not None
    answers = {c.name: st.session_state.get(f"{prefix}:{c.name}") for c in campaign.rubric.criteria}
    missing = [name for name, value in answers.items() if value is None]
    if missing:
        flash("warning", f"Rate every criterion before submitting (missing: {', '.join(missing)}).")
        return
    scores = {name: int(value) for name, value in answers.items() if value is not None}
    result = submit_answers(db, campaign, rater, served, prefix, scores)
    if result is not None:
        flash("success" if result.saved else "warning", result.message)


def main() -> None:
    st.title("Rate outputs")
    db = ratings_db()
    if db is None:
        return
    session = rater_session(db, "rubric", key="rr_campaign")
    if session is None:
        return
    campaign, rater = session
    rubric = campaign.rubric
    if rubric is None:
        return
    show_flash()
    show_progress(db, campaign, rater)
    served = db.next_item(campaign.campaign_id, rater)
    if served is None:
        st.success("Nothing is left for you to rate in this campaign. Thank you!")
        return
    item = served.item
    if rubric.instructions:
        st.info(plain(rubric.instructions))
    st.markdown("**Prompt**")
    st.text(item.prompt)
    st.markdown("**Output**")
    st.text(served.outputs[0])
    if rubric.show_target and item.target:
        st.markdown("**Reference answer**")
        st.text(item.target)
    prefix = f"rr-{served.key}"  # opaque: the item id names the run
    with st.form(f"{prefix}:form"):
        for criterion in rubric.criteria:
            st.radio(
                f"**{plain(criterion.name)}**: {plain(criterion.question)}",
                SCALE_POINTS,
                index=None,
                format_func=_point_label(criterion),
                key=f"{prefix}:{criterion.name}",
            )
        form_buttons(
            db, campaign, rater, served, prefix, submit_label="Submit", on_submit=_on_submit, noun="item"
        )


if __name__ == "__main__":
    main()
