"""Blind pairwise page: one prompt, two runs' answers in a random order, names shown after the vote.

The order is drawn per rater and item (stable across reruns) and recorded with the vote. Submitting
runs in the button's callback, bound to the pair the form showed, so a second tab or a double click
can never attach a vote to a different pair. Nothing sent to the browser before the vote names a run
or a model: the widget keys carry the pair's opaque `ServedItem.key`, never its item id.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from harness.leaderboard.human import (
    VOTE_LABELS,
    flash,
    form_buttons,
    rater_session,
    ratings_db,
    run_names,
    show_flash,
    show_progress,
    submit_answers,
)
from harness.leaderboard.ui import plain
from harness.ratings import VOTES, Campaign, RatingsDB, ServedItem

_REVEAL_KEY = "rp_reveal"


def _on_vote(db: RatingsDB, campaign: Campaign, rater: str, served: ServedItem, prefix: str) -> None:
    vote = st.session_state.get(f"{prefix}:vote")
    if vote is None:
        flash("warning", "Choose one of the four answers before submitting.")
        return
    result = submit_answers(db, campaign, rater, served, prefix, {"preference": vote})
    if result is None:
        return  # nothing was written; the vote stays selected for another try
    st.session_state[_REVEAL_KEY] = {
        "campaign": campaign.campaign_id,
        "order": served.display_order,
        "vote": vote,
        "message": result.message,
        "saved": result.saved,
    }


def _reveal(reveal: dict[str, Any]) -> None:
    """The vote just cast, and which run wrote which answer."""
    order: tuple[str, ...] = reveal["order"]
    text = f"{reveal['message']} You chose: {VOTE_LABELS[reveal['vote']]}."
    (st.success if reveal["saved"] else st.warning)(text)
    if order[0].startswith("gold:"):
        st.markdown("Both answers were written for this campaign as a check.")
    else:
        names = run_names(order)
        st.markdown(f"**A** was {plain(names[order[0]])}  \n**B** was {plain(names[order[1]])}")
    st.button(
        "Next pair", type="primary", key="rp_next", on_click=st.session_state.pop, args=(_REVEAL_KEY, None)
    )


def _vote_form(db: RatingsDB, campaign: Campaign, rater: str, served: ServedItem) -> None:
    item = served.item
    st.markdown("**Prompt**")
    st.text(item.prompt)
    left, right = st.columns(2)
    left.markdown("**Answer A**")
    left.text(served.outputs[0])
    right.markdown("**Answer B**")
    right.text(served.outputs[1])
    prefix = f"rp-{served.key}"  # opaque: the item id names both runs
    with st.form(f"{prefix}:form"):
        st.radio(
            "Which answer is better?",
            VOTES,
            index=None,
            horizontal=True,
            format_func=VOTE_LABELS.__getitem__,
            key=f"{prefix}:vote",
        )
        form_buttons(
            db, campaign, rater, served, prefix, submit_label="Submit vote", on_submit=_on_vote, noun="pair"
        )


def main() -> None:
    st.title("Compare answers")
    db = ratings_db()
    if db is None:
        return
    session = rater_session(db, "pairwise", key="rp_campaign")
    if session is None:
        return
    campaign, rater = session
    reveal = st.session_state.get(_REVEAL_KEY)
    if reveal is not None and reveal["campaign"] == campaign.campaign_id:
        _reveal(reveal)
        return
    show_flash()
    show_progress(db, campaign, rater)
    st.caption(
        "The two answers come from different models, in a random order; their names show after you vote."
    )
    served = db.next_item(campaign.campaign_id, rater)
    if served is None:
        st.success("Nothing is left for you to compare in this campaign. Thank you!")
        return
    _vote_form(db, campaign, rater, served)


if __name__ == "__main__":
    main()
