"""Human evaluation results: scores or Bradley–Terry ratings, agreement, rater checks, metric links."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from harness.errors import HarnessError
from harness.leaderboard.human import export_quietly, pick_campaign, ratings_db, run_names, store_root
from harness.leaderboard.ranking import interval_text
from harness.leaderboard.ui import plain
from harness.ratings import Campaign, CampaignSummary, RatingsDB, RatingsError, ratings_frame, summarize
from harness.ratings.correlation import sample_metric_values
from harness.store import list_store, load_samples


@st.cache_data(show_spinner="Reading the rated runs' samples…", max_entries=8)
def _metric_values(key: str, root: str, runs: tuple[str, ...]) -> pd.DataFrame | None:
    del key  # the store listing's digest
    frames = []
    for run_id in runs:
        try:
            frames.append(load_samples(root, run_id))
        except HarnessError:
            continue  # a run deleted or unreadable since the campaign began: no metric to compare
    frames = [frame for frame in frames if not frame.empty]
    return sample_metric_values(pd.concat(frames, ignore_index=True)) if frames else None


@st.cache_data(show_spinner="Computing agreement and intervals…", max_entries=16)
def _summary(
    key: tuple[str, int, str, bool], mode: str, _ratings: pd.DataFrame, _metrics: pd.DataFrame | None
) -> CampaignSummary:
    # Keyed by (campaign, rating count, newest rating, exclusion): unchanged ratings are not re-analysed.
    return summarize(_ratings, mode=mode, metric_values=_metrics, exclude_flagged=key[3])


def _with_interval(frame: pd.DataFrame, low: str, high: str, digits: int = 3) -> pd.DataFrame:
    texts = [interval_text(a, b, digits) for a, b in zip(frame[low], frame[high], strict=True)]
    return frame.assign(**{"95% CI": texts})


def _with_names(frame: pd.DataFrame, column: str = "run_id") -> pd.DataFrame:
    names = run_names(tuple(str(run) for run in frame[column]))
    return frame.assign(**{column: frame[column].map(names)})


def _scores(campaign: Campaign, summary: CampaignSummary) -> None:
    if summary.scores.empty:
        return
    if campaign.mode == "rubric":
        st.subheader("Mean human score (1-5) per run and criterion")
        table = _with_interval(summary.scores, "ci_low", "ci_high")
        st.dataframe(
            _with_names(table[["run_id", "question", "mean", "95% CI", "items", "ratings"]]),
            hide_index=True,
            width="stretch",
            column_config={"mean": st.column_config.NumberColumn("mean", format="%.2f")},
        )
        return
    st.subheader("Bradley–Terry ratings")
    table = _with_interval(summary.scores, "rating_low", "rating_high", 0)
    st.dataframe(
        _with_names(table[["run_id", "rating", "95% CI", "comparisons"]]),
        hide_index=True,
        width="stretch",
        column_config={
            "rating": st.column_config.NumberColumn("rating", format="%.0f", help="Elo scale, 1000 = average")
        },
    )
    if summary.win_rates is not None and not summary.win_rates.empty:
        st.subheader("Win rate of the row run against the column run (ties count half)")
        names = run_names(tuple(str(run) for run in summary.win_rates.index))
        st.dataframe(summary.win_rates.rename(index=names, columns=names), width="stretch")
    bias = summary.position_bias
    if bias is not None and bias.decisive:
        interval = interval_text(bias.ci_low, bias.ci_high, 2)
        verdict = (
            "no sign of position bias"
            if bias.p_value is None or bias.p_value >= 0.05
            else "raters favour one side"
        )
        st.metric(
            "Left answer wins (position bias)",
            f"{bias.rate:.0%}",
            help="Among votes that picked a side; 50% = no bias",
        )
        counts = f"{bias.left_wins} of {bias.decisive} decisive votes"
        st.caption(f"{counts}, 95% CI {interval}, p = {bias.p_value:.3g}: {verdict}.")


def _agreement(summary: CampaignSummary) -> None:
    st.subheader("Inter-rater agreement")
    if summary.agreement.empty:
        st.info("Agreement needs items rated by at least two raters.")
    else:
        table = _with_interval(summary.agreement, "ci_low", "ci_high")
        st.dataframe(
            table[["question", "level", "alpha", "95% CI", "units", "values"]],
            hide_index=True,
            width="stretch",
            column_config={"alpha": st.column_config.NumberColumn("Krippendorff's alpha", format="%.3f")},
        )
    if not summary.kappas.empty:
        st.caption("Cohen's kappa for each pair of raters, over the items both rated")
        st.dataframe(summary.kappas, hide_index=True, width="stretch")


def _raters_and_metrics(summary: CampaignSummary) -> None:
    st.subheader("Raters")
    st.dataframe(summary.raters, hide_index=True, width="stretch")
    if not summary.correlations.empty:
        st.subheader("Human judgement against automatic metrics, per document")
        st.dataframe(summary.correlations, hide_index=True, width="stretch")
    for note in summary.notes:
        st.info(plain(note))


def _show(db: RatingsDB, campaign: Campaign) -> None:
    progress = db.campaign_progress(campaign.campaign_id)
    columns = st.columns(4)
    columns[0].metric("Items", progress.items)
    columns[1].metric(
        "Done", f"{progress.fraction:.0%}", help=f"{progress.ratings_done} of {progress.ratings_needed}"
    )
    columns[2].metric("Raters", progress.raters)
    columns[3].metric("Gold items", progress.gold_items)
    exclude = st.toggle("Leave out raters who failed gold checks", value=True, key="hr_exclude")
    ratings = ratings_frame(db, campaign.campaign_id)
    newest = "" if ratings.empty else str(ratings["created_at"].max())
    root = store_root()
    metrics = _metric_values(list_store(root).key, root, campaign.runs)
    summary = _summary(
        (campaign.campaign_id, len(ratings), newest, bool(exclude)), campaign.mode, ratings, metrics
    )
    _scores(campaign, summary)
    _agreement(summary)
    _raters_and_metrics(summary)
    if st.button("Export to the store's ratings table", key="hr_export"):
        export_quietly(db, campaign.campaign_id)
        st.success(f"Exported {len(ratings)} rating(s) to the store's ratings table.")


def main() -> None:
    st.title("Human evaluation")
    db = ratings_db(results=True)
    if db is None:
        return
    campaign = pick_campaign(db, ("rubric", "pairwise"), key="hr_campaign")
    if campaign is None:
        return
    try:
        _show(db, campaign)
    except RatingsError as error:
        st.error(plain(error))


if __name__ == "__main__":
    main()
